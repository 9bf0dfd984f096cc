"""Notices: lifecycle, sending, letters (being written; see issue 5)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session


def close_for_invoices(session: Session, invoice_ids: Sequence[int], reason: str,
                       user_id: int | None) -> None:  # fmt: skip
    """Close the open notices whose invoices are all settled (to be written)."""


def send_notices(session: Session, tenant, notice_ids: Sequence[int]) -> None:
    """Queue the approved notices' messages, letters and tasks (to be written)."""
