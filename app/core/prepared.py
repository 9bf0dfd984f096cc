"""Server-side prepared statements for the statements a much-visited page runs on every
visit, its planning done once per connection instead of on every visit.

They are off for the rest of the app (app/config.py: a generic plan cannot use a trigram index
for `LIKE $1`, and each workspace's statements are prepared anew on every pooled connection).
A page whose statements are all of a fixed shape, none a search, may ask for them inside
`prepared_statements`; a list asks only while it is not searching (nor filtering by a custom
field). The dashboard's counts of a collector's work queue took 1.9 ms to plan and 0.5 ms to
run at 1M invoices; the aging page's top clients 0.7 ms to plan and 0.3 ms to run.
PostgreSQL plans a prepared statement afresh for its first five runs and then keeps a generic
plan only when it costs no more than those did; psycopg keeps the 100 statements a connection
used last and deallocates the rest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def prepared_statements(session: Session, enabled: bool = True) -> Iterator[None]:
    """Every statement `session` runs inside is prepared on the server on its first run and
    reused by name after; the connection's own setting comes back after. `enabled` False: the
    block runs as anywhere else (a list asked for a search)."""
    if not enabled:
        yield
        return
    driver = session.connection().connection.driver_connection
    before = driver.prepare_threshold
    driver.prepare_threshold = 0
    try:
        yield
    finally:
        driver.prepare_threshold = before
