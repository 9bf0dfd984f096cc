"""Reading a provider's webhook body: a provider URL is public, so a body is hostile until
proven otherwise, signed or not. `read_json` and `check_shape` refuse (a 4xx with a short
reason, nothing stored) what no provider sends: invalid UTF-8, NUL characters (PostgreSQL
cannot store them), JSON nested deeper than MAX_JSON_DEPTH, or a field of the wrong type.
Times a provider claims are clamped by `provider_time`. The connectors parse their bodies
with these; the receivers and the webhook worker (`app.messaging.webhooks`) refuse with them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

# Real provider bodies nest 7 levels at most (Meta's statuses[].errors[].error_data).
MAX_JSON_DEPTH = 32
# A provider's clock is not ours, and even a signed body can claim any time. A claimed time
# after we received the report is the time of receipt (a message dated 2100 must not keep
# WhatsApp's 24-hour window open for good); one more than this before receipt is this long
# before receipt (Meta retries a webhook for up to 7 days, so nothing older is genuine).
PROVIDER_CLOCK_FLOOR = timedelta(days=7)


class BadWebhookBody(ValueError):
    """A body no provider sends: refused with `status` and a short reason, nothing stored."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


def read_json(body: bytes | str):
    """The JSON value of a webhook body, or BadWebhookBody: not UTF-8, not JSON, a NUL
    character anywhere, or nested deeper than MAX_JSON_DEPTH."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadWebhookBody("The body is not UTF-8 text.") from exc
    if "\x00" in body:
        raise BadWebhookBody("The body contains a NUL character.")
    try:
        data = json.loads(body)
    except RecursionError as exc:  # deep nesting exhausts the parser's stack
        raise BadWebhookBody("The JSON is nested too deeply.") from exc
    except ValueError as exc:
        raise BadWebhookBody("The body is not JSON.") from exc
    _check_tree(data)
    return data


def _check_tree(data) -> None:
    """Depth and NUL characters (in keys and strings), without recursion."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise BadWebhookBody("The body contains a NUL character.")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadWebhookBody("The JSON is nested too deeply.")
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        for key, item in items:
            if key is not None and "\x00" in key:
                raise BadWebhookBody("The body contains a NUL character.")
            pending.append((item, depth + 1))


def check_shape(value, shape, where: str = "body") -> None:
    """BadWebhookBody unless `value` has `shape`: a type or a tuple of types (a leaf; a bool
    is not a number), {key: shape} (an object whose listed keys have their shapes when they
    are present and not null; other keys are ignored), or [shape] (a list of such items)."""
    pending = [(value, shape, where)]
    while pending:
        value, shape, where = pending.pop()
        if isinstance(shape, dict):
            if not isinstance(value, dict):
                raise BadWebhookBody(f"{where} is not an object.")
            pending.extend(
                (value[key], inner, f"{where}.{key}")
                for key, inner in shape.items()
                if value.get(key) is not None
            )
        elif isinstance(shape, list):
            if not isinstance(value, list):
                raise BadWebhookBody(f"{where} is not a list.")
            pending.extend((item, shape[0], f"{where}[{n}]") for n, item in enumerate(value))
        else:
            types = shape if isinstance(shape, tuple) else (shape,)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise BadWebhookBody(f"{where} has the wrong type.")


def provider_time(claimed: datetime | None, received_at: datetime) -> datetime:
    """A time a provider claims, clamped to [receipt - PROVIDER_CLOCK_FLOOR, receipt]; the
    receipt time when it claims none (or nothing readable)."""
    if claimed is None:
        return received_at
    return min(max(claimed, received_at - PROVIDER_CLOCK_FLOOR), received_at)
