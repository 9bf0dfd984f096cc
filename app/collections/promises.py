"""Promises to pay (being written; see issue 5)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session


def check_after_payment(session: Session, client_id: int, user_id: int | None) -> None:
    """Mark the client's open promises kept when the money promised has arrived (to be
    written)."""


def mark_broken(session: Session, today: date) -> list:
    """Open promises whose date has passed unpaid become broken (to be written)."""
    return []
