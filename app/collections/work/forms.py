"""How the call and visit forms are shown: outcome labels and choices, the fields a form
sends. Validation is in app/collections/work/services.py (the same rules for any caller)."""

from __future__ import annotations

from collections.abc import Mapping

from app.collections.models import CALL_OUTCOMES, VISIT_OUTCOMES

CALL_OUTCOME_LABELS = {
    "promised": "Promised to pay",
    "paid_claimed": "Says it is paid",
    "disputed": "Disputes the invoice",
    "no_answer": "No answer",
    "call_back": "Asked to call back",
    "wrong_number": "Wrong number",
    "refused": "Refused to pay",
    "left_message": "Left a message",
    "other": "Other (say what in the note)",
}
VISIT_OUTCOME_LABELS = {
    "met_promised": "Met them: promised to pay",
    "met_paid": "Met them: says it is paid",
    "met_disputed": "Met them: disputes the invoice",
    "met_refused": "Met them: refused to pay",
    "not_available": "Nobody there to meet",
    "premises_closed": "Premises closed",
    "other": "Other (say what in the note)",
}
VERIFICATION_LABELS = {
    "verified": "Verified",
    "flagged": "Flagged for verification",
    "confirmed": "Confirmed by a manager",
    "rejected": "Rejected by a manager",
}
KIND_LABELS = {"call": "Call", "visit": "Field visit"}
# Every outcome the models allow has a label (a new code without one fails at import).
if set(CALL_OUTCOME_LABELS) != set(CALL_OUTCOMES) or set(VISIT_OUTCOME_LABELS) != set(
    VISIT_OUTCOMES
):
    raise RuntimeError("an outcome code has no label in app/collections/work/forms.py")

COMMON_FIELDS = ("notice_id", "contact_id", "outcome", "note", "follow_up_on", "occurred_at")
VISIT_FIELDS = (*COMMON_FIELDS, "latitude", "longitude", "accuracy_m")


def outcome_label(kind: str, outcome: str) -> str:
    labels = CALL_OUTCOME_LABELS if kind == "call" else VISIT_OUTCOME_LABELS
    return labels.get(outcome, outcome)


def outcome_choices(kind: str) -> list[tuple[str, str]]:
    labels = CALL_OUTCOME_LABELS if kind == "call" else VISIT_OUTCOME_LABELS
    return [("", "Choose…"), *labels.items()]


def submitted(form: Mapping, kind: str) -> dict:
    """The service's keyword arguments from a posted form."""
    return {name: form.get(name) for name in (VISIT_FIELDS if kind == "visit" else COMMON_FIELDS)}
