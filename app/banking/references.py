"""What a narration tells about who paid for what: the keys matching looks up.

- UTR / RRN: a NEFT or RTGS UTR (`SBINN52025021511431836`, 22 characters; legacy 16), an
  IMPS or UPI RRN (12 digits between separators). They identify the transfer itself: a line
  whose UTR is the reference of a payment already recorded by hand is that payment.
- Invoice numbers: numbering formats are the workspace's own (INV/26-27/00001, A-17), and
  banks and payers cut them with their own separators (UPI notes drop '/', NEFT remarks turn
  it into '-' or ' '). So every run of 1 to 6 consecutive letter-or-digit groups of the
  narration, joined without separators, is a key when it holds a digit and is 3 to 16
  characters long; an invoice is found by its number written the same way (`invoice_key`).
  Looked up by equality in one join, never a substring scan.
"""

from __future__ import annotations

import re

UTR = re.compile(r"\b[A-Z]{4}[NR]\d(?:20\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))\d{8}\b")
LEGACY_UTR = re.compile(r"\b[A-Z]{4}[A-Z]\d{11}\b")
RRN = re.compile(r"(?:(?<=[/\-\s])|^)(\d{12})(?=[/\-\s]|$)")
GROUP = re.compile(r"[A-Za-z0-9]+")
MAX_GROUPS = 6
KEY_LENGTHS = range(3, 17)  # invoice numbers are at most 16 characters


def invoice_key(number: str) -> str:
    """An invoice number as the narration keys write it: letters and digits, upper case."""
    return "".join(GROUP.findall(number)).upper()


def transfer_references(*texts: str | None) -> list[str]:
    """The UTRs and RRNs in the texts (narration, bank reference), in order, once each."""
    found: list[str] = []
    for text in texts:
        if not text:
            continue
        upper = text.upper()
        for pattern in (UTR, LEGACY_UTR, RRN):
            for match in pattern.finditer(upper):
                value = match.group(match.lastindex or 0)
                if value not in found:
                    found.append(value)
    return found


def narration_keys(*texts: str | None) -> list[str]:
    """The invoice-number keys of the texts (see the module's docstring), once each."""
    keys: list[str] = []
    seen: set[str] = set()
    for text in texts:
        groups = [g.upper() for g in GROUP.findall(text or "")]
        for start in range(len(groups)):
            joined = ""
            for group in groups[start : start + MAX_GROUPS]:
                joined += group
                if len(joined) > KEY_LENGTHS.stop - 1:
                    break
                if (
                    len(joined) in KEY_LENGTHS
                    and joined not in seen
                    and any(c.isdigit() for c in joined)
                ):
                    seen.add(joined)
                    keys.append(joined)
    return keys
