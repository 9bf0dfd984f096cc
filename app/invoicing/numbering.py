"""Taking the next invoice number of a series in a financial year (the format and the
financial years themselves: `app.core.number_formats`)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.number_formats import NumberFormat
from app.invoicing.models import InvoiceNumberSequence


def next_invoice_number(session: Session, series: str, fiscal_year: str, fmt: NumberFormat) -> str:
    """Take the next number of `series` in `fiscal_year` and return it formatted.

    One statement, in the caller's (tenant-bound) transaction:

        INSERT INTO invoice_number_sequences (series, fiscal_year, next_number) VALUES (s, y, 2)
        ON CONFLICT (series, fiscal_year)
        DO UPDATE SET next_number = invoice_number_sequences.next_number + 1
        RETURNING next_number - 1

    Why consecutive, without duplicates and without gaps:

    - No duplicates: the statement takes the row's lock (the first issue of a year inserts the
      row; a concurrent first issue waits on the primary key and then takes the update path).
      A second issuer blocks on that lock until the first transaction ends, then re-reads the
      row as committed, so each committed number is handed out once.
    - No gaps: the number and the invoice that carries it are written in the same transaction.
      If that transaction rolls back, the counter's increment rolls back with it, and the next
      issuer (who was waiting on the lock) takes that same number. Unlike a PostgreSQL SEQUENCE,
      which never gives a number back, nothing is lost to a failed issue.

    The price is that issues of the same series and year are serialised: the lock is held until
    the caller commits, so keep the issuing transaction short (take the number last). Different
    series or years, and different tenants, do not wait on each other.
    """
    fmt.check(series, fiscal_year)
    table = InvoiceNumberSequence.__table__
    statement = (
        insert(table)
        .values(series=series, fiscal_year=fiscal_year, next_number=2)
        .on_conflict_do_update(
            index_elements=[table.c.series, table.c.fiscal_year],
            set_={"next_number": table.c.next_number + 1},
        )
        .returning(table.c.next_number - 1)
    )
    number = session.execute(statement).scalar_one()
    return fmt.render(series, fiscal_year, number)
