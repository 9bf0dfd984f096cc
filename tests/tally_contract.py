"""TallyPrime's envelopes against tests/contracts/tally/envelopes.xsd: a schema the project wrote
(Tally publishes none; see tests/contracts/SOURCE.txt), XSD 1.1 so that a voucher's fields may
come in any order, as Tally writes them.

`check_envelope(body)` validates one request or answer, as bytes on the wire: UTF-8 or UTF-16
(with or without a byte-order mark); the control-character references real Tally writes
(`&#4;`) are removed first, as the reader does, since no XML parser accepts them. It raises
xmlschema's error, naming the element and what the schema expected.
"""

from __future__ import annotations

import codecs
import re
from functools import cache
from pathlib import Path

import xmlschema

SCHEMA = Path(__file__).parent / "contracts" / "tally" / "envelopes.xsd"
_CONTROL = re.compile(
    r"&#(?:x0*[0-8bcef]|x0*1[0-9a-f]|0*(?:[0-8]|1[124-9]|2\d|3[01]));|[\x00-\x08\x0b\x0c\x0e-\x1f]",
    re.I,
)


@cache
def schema() -> xmlschema.XMLSchema11:
    return xmlschema.XMLSchema11(str(SCHEMA))


def _text(body: bytes) -> str:
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = body.decode("utf-16")
    elif len(body) >= 2 and body[1] == 0:
        text = body.decode("utf-16-le")
    else:
        text = body.decode("utf-8-sig")
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", _CONTROL.sub("", text))


def check_envelope(body: bytes) -> None:
    schema().validate(_text(body))
