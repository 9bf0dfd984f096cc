"""Bank statements pulled from the bank's SFTP folder, against a local SFTP server
(tests/sftp_standin.py): the host key is shown and trusted only once confirmed, and a changed
one is refused before logging in; each file is imported once through the upload's path; a
wrong password or a private address is recorded on the account as the reason; remote files
are never touched; the account page sets it up, checks it and pulls."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from app.banking import services, sftp
from app.banking.models import PulledStatementFile, SftpSource, StatementImport, StatementLine
from app.core.crypto import SecretsUnreadable, decrypt_secrets
from app.payments.services import PaymentInvalid
from jobs.banking import pull_bank_statements_all
from tests.helpers import csrf_token_from, tenant_session
from tests.sftp_standin import SftpStandin, new_ed25519_key

HEADER = "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"


def hdfc(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


@pytest.fixture
def bank(tmp_path):
    folder = tmp_path / "bank" / "outbox"
    folder.mkdir(parents=True)
    server = SftpStandin(tmp_path / "bank")
    yield server, folder
    server.close()


@pytest.fixture
def books(app, db_session, make_tenant, make_client, make_invoice):
    tenant = make_tenant(region="27")
    session = tenant_session(db_session, tenant)
    ravi = make_client(session, name="Ravi Kumar Traders", short_name="RAVI")
    invoice = make_invoice(session, tenant, ravi, ("118000.00",), issued_on=date(2027, 2, 1))
    account = services.add_bank_account(session, "HDFC current", "50100012345678", "INR")
    with app.app_context():
        yield session, account, invoice


def settings_for(server, **changes) -> dict:
    return {
        "host": "127.0.0.1",
        "port": str(server.port),
        "username": server.username,
        "password": server.password,
        "folder": "/outbox",
        "file_pattern": "*.csv",
        **changes,
    }


def trusted_source(session, account, server, **changes) -> SftpSource:
    """Saved, the server's key seen on a first attempt and confirmed as the person would."""
    source = sftp.save_source(session, account, settings_for(server, **changes))
    first = sftp.pull(session, source.id)
    assert "confirm it is your bank's" in first.error
    sftp.confirm_host_key(session, source, server.fingerprint)
    return source


def imports_of(session) -> list[StatementImport]:
    return session.scalars(select(StatementImport).order_by(StatementImport.id)).all()


def test_a_host_key_is_trusted_only_when_confirmed_and_nothing_is_fetched_before(books, bank):
    session, account, _ = books
    server, folder = bank
    (folder / "jan.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    source = sftp.save_source(session, account, settings_for(server))
    outcome = sftp.pull(session, source.id)
    assert server.fingerprint in outcome.error and outcome.imported == 0
    assert (source.presented_key_type, source.presented_key_fingerprint) == (
        "ssh-ed25519",
        server.fingerprint,
    )
    assert source.host_key_fingerprint is None and imports_of(session) == []
    # A page shown before the server changed its key confirms nothing.
    with pytest.raises(PaymentInvalid):
        sftp.confirm_host_key(session, source, "SHA256:someone-elses-key")
    assert source.host_key_fingerprint is None
    sftp.confirm_host_key(session, source, server.fingerprint)
    assert sftp.pull(session, source.id).imported == 1


def test_each_file_is_imported_once_and_the_remote_folder_is_left_as_it_was(books, bank):
    session, account, invoice = books
    server, folder = bank
    march = hdfc(f'15/03/27,PAYMENT {invoice.number},R1,15/03/27,,"1,18,000.00",')
    (folder / "march.csv").write_bytes(march)
    (folder / "april.csv").write_bytes(
        hdfc('01/04/27,NEFT SOMEONE,R2,01/04/27,,"700.00",', '02/04/27,BROKEN,R3,02/04/27,,"abc",')
    )
    (folder / "readme.txt").write_bytes(b"not a statement, not matching the pattern")
    (folder / "junk.csv").write_bytes(b"<html>The bank's error page</html>")
    source = trusted_source(session, account, server)

    first = sftp.pull(session, source.id)
    assert (first.imported, first.refused, first.error) == (2, 1, None)
    statements = imports_of(session)
    assert {s.filename for s in statements} == {"march.csv", "april.csv"}
    assert {s.received_by for s in statements} == {"sftp"}
    april = next(s for s in statements if s.filename == "april.csv")
    assert april.bad_lines == [{"line": 3, "reason": "“abc” is not an amount."}]
    # Matched as an upload would be: the invoice number in the narration is suggested.
    assert (
        session.scalar(
            select(StatementLine.invoice_id).where(StatementLine.narration.contains(invoice.number))
        )
        == invoice.id
    )
    outcomes = dict(
        session.execute(select(PulledStatementFile.name, PulledStatementFile.outcome)).all()
    )
    assert outcomes == {"march.csv": "imported", "april.csv": "imported", "junk.csv": "refused"}
    assert "2 new statements imported" in source.last_result

    second = sftp.pull(session, source.id)
    assert (second.imported, second.skipped) == (0, 3)
    assert len(imports_of(session)) == 2

    # The same bytes under another name: remembered by their sha256, not imported again.
    (folder / "march-copy.csv").write_bytes(march)
    (folder / "may.csv").write_bytes(hdfc('02/05/27,NEFT LATER,R9,02/05/27,,"900.00",'))
    third = sftp.pull(session, source.id)
    assert third.imported == 1 and [s.filename for s in imports_of(session)][-1] == "may.csv"
    assert (
        session.scalar(
            select(PulledStatementFile.outcome).where(PulledStatementFile.name == "march-copy.csv")
        )
        == "duplicate"
    )
    assert session.scalar(select(func.count()).select_from(StatementLine)) == 3
    assert sorted(p.name for p in folder.iterdir()) == [
        "april.csv",
        "junk.csv",
        "march-copy.csv",
        "march.csv",
        "may.csv",
        "readme.txt",
    ]
    assert server.refused_changes == 0


def test_a_csv_of_unknown_columns_waits_for_its_mapping_and_is_pulled_then(books, bank):
    session, account, _ = books
    server, folder = bank
    (folder / "other.csv").write_bytes(b"When;What;In;Out\n2027-03-15;Advance;500.00;\n")
    source = trusted_source(session, account, server)
    assert sftp.pull(session, source.id).imported == 0
    assert "CSV columns are not known yet" in source.last_result and source.last_error is None
    assert session.scalar(select(func.count()).select_from(PulledStatementFile)) == 0
    services.save_column_mapping(
        session, account, {"booked_on": "When", "narration": "What", "credit": "In", "debit": "Out"}
    )
    assert sftp.pull(session, source.id).imported == 1


def test_a_file_over_the_limit_is_refused_unread_and_the_others_still_come(
    books, bank, monkeypatch
):
    session, account, _ = books
    server, folder = bank
    monkeypatch.setattr(sftp, "MAX_FILE_BYTES", 1024 * 1024)
    (folder / "a-year.csv").write_bytes(b"x" * (1024 * 1024 + 1))
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    source = trusted_source(session, account, server)
    outcome = sftp.pull(session, source.id)
    assert (outcome.imported, outcome.refused, outcome.error) == (1, 1, None)
    reason = session.scalar(
        select(PulledStatementFile.reason).where(PulledStatementFile.name == "a-year.csv")
    )
    assert reason.startswith("Larger than 1 MB: not read.")


def test_a_changed_host_key_is_refused_with_the_reason_and_nothing_imported(books, bank):
    session, account, _ = books
    server, folder = bank
    source = trusted_source(session, account, server)
    trusted = server.fingerprint
    server.change_host_key()
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    outcome = sftp.pull(session, source.id)
    assert outcome.imported == 0 and imports_of(session) == []
    assert source.last_error.startswith("The server's host key changed")
    assert trusted in source.last_error and server.fingerprint in source.last_error
    assert source.host_key_fingerprint == trusted  # still the confirmed one
    assert source.presented_key_fingerprint == server.fingerprint  # shown for confirming


def test_a_wrong_password_is_recorded_as_the_reason_and_the_next_run_tries_again(books, bank):
    session, account, _ = books
    server, folder = bank
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    source = trusted_source(session, account, server, password="not-the-password")
    outcome = sftp.pull(session, source.id)
    assert source.last_error == "The server refused the user name or password."
    assert outcome.imported == 0 and source.last_success_at is None
    sftp.save_source(session, account, settings_for(server))  # the right one
    assert sftp.pull(session, source.id).imported == 1
    assert source.last_error is None


def test_a_private_key_logs_in_and_a_bad_one_is_refused_on_the_form(books, bank):
    session, account, _ = books
    server, folder = bank
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    server.client_public_key, private_text = new_ed25519_key()
    with pytest.raises(PaymentInvalid) as refused:
        sftp.save_source(
            session, account, settings_for(server, password="", private_key="not a key")
        )
    assert "not a private key Duebook reads" in refused.value.errors["private_key"]
    source = trusted_source(session, account, server, password="", private_key=private_text)
    assert sftp.pull(session, source.id).imported == 1


def test_a_private_address_is_refused_unless_allowed(app, books, bank, monkeypatch):
    session, account, _ = books
    server, _ = bank
    source = sftp.save_source(session, account, settings_for(server))
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOWED_NETWORKS", ())
    with pytest.raises(PaymentInvalid) as refused:
        sftp.save_source(session, account, settings_for(server, host="10.1.2.3"))
    assert "private and local network addresses" in refused.value.errors["host"]
    # A name that resolves to a private address is refused at connect time.
    outcome = sftp.pull(session, source.id)
    assert "private and local network addresses are refused" in outcome.error
    source.host = "localhost"
    assert "private and local network addresses are refused" in sftp.pull(session, source.id).error
    assert source.presented_key_fingerprint is None  # nothing reached the server


@pytest.fixture
def signed_in(app, client, db_session, make_tenant, make_user, login, storage_root):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    account = services.add_bank_account(session, "HDFC current", "50100012345678", "INR")
    session.commit()
    login(client, owner)
    return tenant, session, account


def post(client, page_url, url, data):
    token = csrf_token_from(client.get(page_url).text)
    return client.post(url, data={**data, "csrf_token": token})


def test_the_account_page_sets_up_checks_confirms_and_pulls(client, signed_in, bank, run_jobs):
    tenant, session, account = signed_in
    server, folder = bank
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    page_url = f"/t/{tenant.slug}/bank/accounts/{account.id}"
    assert f'href="{page_url}"' in client.get(f"/t/{tenant.slug}/bank/").text
    assert "Set up SFTP" in client.get(page_url).text

    bad = post(client, page_url, f"{page_url}/sftp", settings_for(server, port="99999"))
    assert bad.status_code == 422 and "Enter a port from 1 to 65535" in bad.text
    assert server.password not in bad.text  # a secret is never sent back

    saved = post(client, page_url, f"{page_url}/sftp", settings_for(server))
    assert saved.status_code == 303
    run_jobs()  # the connection check the save asked for
    page = client.get(page_url).text
    assert server.fingerprint in page and "trust it" in page
    assert server.password not in page

    post(client, page_url, f"{page_url}/sftp/host-key", {"fingerprint": server.fingerprint})
    run_jobs()
    page = client.get(page_url).text
    assert "Connected and logged in; 1 file matching *.csv in /outbox." in page
    assert imports_of(session) == []  # a check imports nothing

    assert post(client, page_url, f"{page_url}/sftp/pull", {}).status_code == 303
    run_jobs()
    page = client.get(page_url).text
    assert "1 new statement imported" in page and "march.csv" in page
    (statement,) = imports_of(session)
    shown = client.get(f"/t/{tenant.slug}/bank/imports/{statement.id}").text
    assert "Pulled from the bank's SFTP folder" in shown

    server.change_host_key()
    post(client, page_url, f"{page_url}/sftp/pull", {})
    run_jobs()
    page = client.get(page_url).text
    assert "failed:" in page and "The server&#39;s host key changed" in page


def test_secrets_rotate_re_encrypts_the_sftp_password(app, books, bank):
    session, account, _ = books
    server, _ = bank
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    previous = app.config["SECRETS_KEYS"]
    app.config["SECRETS_KEYS"] = [key_a, *previous]
    try:
        source = sftp.save_source(session, account, settings_for(server))
        session.commit()
        # The keys already configured stay, for credentials other tests left committed.
        app.config["SECRETS_KEYS"] = [key_b, key_a, *previous]
        result = app.test_cli_runner().invoke(args=["secrets", "rotate"])
    finally:
        app.config["SECRETS_KEYS"] = previous
    assert result.exit_code == 0, result.output
    session.expire_all()
    stored = session.get(SftpSource, source.id).secrets_ciphertext
    assert decrypt_secrets(stored, keys=[key_b])["password"] == server.password
    with pytest.raises(SecretsUnreadable):
        decrypt_secrets(stored, keys=[key_a])


def test_the_30_minute_run_pulls_every_confirmed_source_of_each_workspace(
    app, books, bank, run_jobs
):
    session, account, _ = books
    server, folder = bank
    (folder / "march.csv").write_bytes(hdfc('15/03/27,NEFT RAVI,R1,15/03/27,,"5,000.00",'))
    other = services.add_bank_account(session, "ICICI current", "000405001234", "INR")
    trusted_source(session, account, server)
    waiting = sftp.save_source(session, other, settings_for(server))  # key never confirmed
    session.commit()
    with app.app_context():
        assert pull_bank_statements_all() >= 1
    run_jobs()
    session.expire_all()
    assert [s.bank_account_id for s in imports_of(session)] == [account.id]
    assert session.get(SftpSource, waiting.id).last_attempt_at is None
