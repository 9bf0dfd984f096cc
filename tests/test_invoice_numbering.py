"""Invoice numbers: financial years, the format rules of GST Rule 46, and consecutive numbers
without gaps or duplicates, also under concurrency."""

from __future__ import annotations

import os
import random
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from app.core.number_formats import (
    NumberFormat,
    NumberFormatError,
    NumberingExhausted,
    fiscal_year_at,
    fiscal_year_of,
)
from app.extensions import db
from app.invoicing.models import InvoiceNumberSequence
from app.invoicing.numbering import next_invoice_number
from tenants.binding import TenantSession, bind_tenant, schema_for_tenant_id
from tenants.services import provision_schema
from tests.helpers import tenant_session

FORMAT = NumberFormat.for_series("{series}/{fy}/{seq:05d}", "IN", "IN")  # 2+1+7+1+5 = 16


@pytest.mark.parametrize(
    ("day", "country", "year"),
    [
        (date(2027, 3, 31), "IN", "2026-27"),
        (date(2027, 4, 1), "IN", "2027-28"),
        (date(2026, 4, 1), "in", "2026-27"),
        (date(2099, 12, 31), "IN", "2099-00"),
        (date(2027, 6, 30), "AU", "2026-27"),
        (date(2027, 7, 1), "AU", "2027-28"),
        (date(2026, 12, 31), "PH", "2026"),
        (date(2027, 1, 1), "US", "2027"),
    ],
)
def test_fiscal_year_boundaries(day, country, year):
    assert fiscal_year_of(day, country) == year


def test_fiscal_year_is_read_in_the_tenants_time_zone():
    # 31 March 20:00 UTC is 1 April 01:30 in India: the new financial year there.
    moment = datetime(2027, 3, 31, 20, 0, tzinfo=UTC)
    assert fiscal_year_at(moment, "IN", "Asia/Kolkata") == "2027-28"
    assert fiscal_year_at(moment, "IN", "UTC") == "2026-27"
    # 30 June 15:00 UTC is 1 July 01:00 in Sydney (AEST, +10).
    moment = datetime(2027, 6, 30, 15, 0, tzinfo=UTC)
    assert fiscal_year_at(moment, "AU", "Australia/Sydney") == "2027-28"
    assert fiscal_year_at(moment, "AU", "Australia/Perth") == "2026-27"  # 23:00 there
    with pytest.raises(ValueError, match="aware"):
        fiscal_year_at(datetime(2027, 1, 1), "IN", "Asia/Kolkata")


def test_formats_that_fit_16_characters():
    assert FORMAT.longest_example() == "SS/2026-27/99999"
    assert FORMAT.render("IN", "2026-27", 7) == "IN/2026-27/00007"
    fmt = NumberFormat.for_series("{series}-{fy_short}-{seq:06d}", "INV", "IN")
    assert fmt.render("INV", "2026-27", 123) == "INV-26-27-000123"
    fmt = NumberFormat.for_series("{series}{fy}{seq:04d}", "INVOICE", "PH")
    assert fmt.render("INVOICE", "2026", 1) == "INVOICE20260001"
    assert NumberFormat("{seq}").render("AB", "2026-27", 2**31 - 1) == "2147483647"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{series}/{fy}/{seq:05d}", "numbers of 22 characters, such as 'SSSSSSSS/2026-27/99999'"),
        ("{series}/{fy}/{seq}", "27 characters"),
        ("INV {seq:04d}", "only letters, digits, '-' and '/'; this format has ' '"),
        ("INV_{seq:04d}", "this format has '_'"),
        ("{{{seq:04d}}}", "this format has '{'"),
        ("{series}/{fy}", "needs the number {seq} exactly once"),
        ("{seq:03d}{seq:03d}", "exactly once"),
        ("{date}/{seq:03d}", "Unknown field {date}"),
        ("{seq:5d}", "not a number width"),
        ("{seq:x}", "not a number width"),
        ("{series:>4}{seq:03d}", "{series} takes no format"),
        ("{seq!r}", "no conversion"),
        ("{seq:010d}", "at most 9 digits"),
        ("{seq", "not readable"),
    ],
)
def test_formats_that_could_break_rule_46_are_refused_with_a_clear_message(template, message):
    with pytest.raises(NumberFormatError) as error:
        NumberFormat(template)
    assert message in str(error.value)


def test_series_and_year_must_fit_the_format():
    with pytest.raises(NumberFormatError, match="1 to 8 letters"):
        NumberFormat.for_series("{series}{seq:03d}", "A B", "IN")
    with pytest.raises(NumberFormatError, match="longer than the 2 characters"):
        FORMAT.render("INV", "2026-27", 1)
    with pytest.raises(NumberFormatError, match="does not fit"):
        FORMAT.render("IN", "2026-2027", 1)
    with pytest.raises(NumberingExhausted, match="1 to 99999"):
        FORMAT.render("IN", "2026-27", 100_000)


def test_numbers_are_consecutive_per_series_and_year(db_session, make_tenant):
    session = tenant_session(db_session, make_tenant())
    numbers = [next_invoice_number(session, "IN", "2026-27", FORMAT) for _ in range(3)]
    assert numbers == ["IN/2026-27/00001", "IN/2026-27/00002", "IN/2026-27/00003"]
    # A new financial year and another series start again at 1.
    assert next_invoice_number(session, "IN", "2027-28", FORMAT) == "IN/2027-28/00001"
    assert next_invoice_number(session, "EX", "2026-27", FORMAT) == "EX/2026-27/00001"
    assert next_invoice_number(session, "IN", "2026-27", FORMAT) == "IN/2026-27/00004"
    row = session.get(InvoiceNumberSequence, ("IN", "2026-27"))
    assert row.next_number == 5


def test_tenants_count_separately(db_session, make_tenant):
    first = tenant_session(db_session, make_tenant())
    second = tenant_session(db_session, make_tenant())
    assert next_invoice_number(first, "IN", "2026-27", FORMAT).endswith("00001")
    assert next_invoice_number(first, "IN", "2026-27", FORMAT).endswith("00002")
    assert next_invoice_number(second, "IN", "2026-27", FORMAT).endswith("00001")


def test_a_rolled_back_issue_does_not_burn_its_number(db_session, make_tenant):
    session = tenant_session(db_session, make_tenant())
    assert next_invoice_number(session, "IN", "2026-27", FORMAT) == "IN/2026-27/00001"
    savepoint = session.begin_nested()
    assert next_invoice_number(session, "IN", "2026-27", FORMAT) == "IN/2026-27/00002"
    savepoint.rollback()  # the invoice failed to issue
    assert next_invoice_number(session, "IN", "2026-27", FORMAT) == "IN/2026-27/00002"


def test_an_exhausted_series_refuses_and_rolls_back(db_session, make_tenant):
    session = tenant_session(db_session, make_tenant())
    tiny = NumberFormat("{series}{seq:01d}", series_length=2)
    for expected in range(1, 10):
        assert next_invoice_number(session, "AB", "2026", tiny) == f"AB{expected}"
    savepoint = session.begin_nested()
    with pytest.raises(NumberingExhausted):
        next_invoice_number(session, "AB", "2026", tiny)
    savepoint.rollback()
    assert (
        session.get(InvoiceNumberSequence, ("AB", "2026"), populate_existing=True).next_number == 10
    )


THREADS = 8
PER_THREAD = 25


def test_concurrent_issuers_get_consecutive_numbers_without_gaps_or_duplicates(app):
    """8 threads, each with its own connection and transactions (committed data in a real
    tenant schema made for this test and dropped at the end), 25 issues each, about a fifth of
    them rolled back: the committed numbers are exactly 1..N."""
    tenant_id = 900_000_000 + os.getpid() % 100_000
    schema = schema_for_tenant_id(tenant_id)
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            provision_schema(conn, schema)
            conn.exec_driver_sql(
                f'CREATE TABLE "{schema}".issued (number varchar(16) NOT NULL, worker int)'
            )
        try:
            errors: list[BaseException] = []
            committed: list[str] = []
            lock = threading.Lock()
            start = threading.Barrier(THREADS)

            def issuer(worker: int) -> None:
                rng = random.Random(worker)
                try:
                    start.wait(10)
                    for _ in range(PER_THREAD):
                        with TenantSession(db, bind=engine) as session:
                            bind_tenant(session, tenant_id)
                            number = next_invoice_number(session, "IN", "2026-27", FORMAT)
                            session.execute(
                                text(f'INSERT INTO "{schema}".issued VALUES (:n, :w)'),
                                {"n": number, "w": worker},
                            )
                            if rng.random() < 0.2:
                                session.rollback()
                            else:
                                session.commit()
                                with lock:
                                    committed.append(number)
                except BaseException as error:  # reported by the main thread
                    errors.append(error)

            threads = [threading.Thread(target=issuer, args=(w,)) for w in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not errors, errors
            assert not any(thread.is_alive() for thread in threads)

            with engine.connect() as conn:
                stored = conn.scalars(text(f'SELECT number FROM "{schema}".issued')).all()
                next_number = conn.scalar(
                    text(f'SELECT next_number FROM "{schema}".invoice_number_sequences')
                )
            n = len(committed)
            assert THREADS * PER_THREAD * 0.6 < n < THREADS * PER_THREAD  # some rolled back
            assert sorted(stored) == sorted(committed)
            expected = [f"IN/2026-27/{i:05d}" for i in range(1, n + 1)]
            assert sorted(stored) == expected  # no gaps, no duplicates
            assert next_number == n + 1
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
