"""The "Your domain" check of a workspace sending through its own mail server: SPF (pass
through include and ip4, not authorised with the line to add, two records, no record, the
10-lookup limit), the DKIM key (published and matching, different, missing; the record we ask
for verified by dkimpy against the same DNS), DMARC, and DNS that does not answer ("could not
check now", never a 500). All DNS is the stand-in (app/sandbox/standins/dns.py) that
DNS_RESOLVER points at."""

from __future__ import annotations

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.integrations import mail_domain
from app.integrations.connectors import Outgoing
from app.integrations.connectors.smtp import SmtpConnector, build_email
from app.integrations.mail_domain import BAD, INFO, OK, UNKNOWN, WARN, check_mail_domain
from tests.helpers import csrf_token_from
from tests.test_integrations import post_form, smtp_form

SERVER = "smtp.mailhost.example"
SERVER_IP = "192.0.2.25"


@pytest.fixture
def admin(client, make_user, make_tenant, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    return tenant


@pytest.fixture
def zone(dns_server):
    """Serve `records` from the DNS the app asks, for this test only."""
    yield dns_server.set_zone
    dns_server.set_zone({})
    dns_server.silent.clear()


def _key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _check(dns_server, domain="acme.example", **dkim_settings):
    return {
        finding.topic: finding
        for finding in check_mail_domain(
            dns_server.address, domain, SERVER, **dkim_settings
        ).findings
    }


def _with_server(records: dict) -> dict:
    return {SERVER: {"A": [SERVER_IP]}, **records}


# SPF ----------------------------------------------------------------------------------------


def test_spf_passes_through_an_include_of_the_mail_provider(dns_server, zone):
    zone(
        _with_server(
            {
                "acme.example": {"TXT": ["v=spf1 include:_spf.mailhost.example -all"]},
                "_spf.mailhost.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
            }
        )
    )
    spf = _check(dns_server)["SPF"]
    assert spf.state == OK
    assert spf.says == f"The SPF record of acme.example lets {SERVER} send its mail."
    assert ("_spf.mailhost.example", "TXT") in dns_server.queries  # the include was followed


def test_spf_passes_through_ip4(dns_server, zone):
    zone(_with_server({"acme.example": {"TXT": ["v=spf1 ip4:192.0.2.25 -all"]}}))
    assert _check(dns_server)["SPF"].state == OK


def test_spf_not_authorised_shows_the_record_and_the_line_to_add(dns_server, zone):
    zone(
        _with_server(
            {
                "acme.example": {"TXT": ["v=spf1 include:other.example ~all"]},
                "other.example": {"TXT": ["v=spf1 ip4:198.51.100.0/24 -all"]},
            }
        )
    )
    spf = _check(dns_server)["SPF"]
    assert spf.state == BAD
    assert "does not let smtp.mailhost.example (192.0.2.25) send" in spf.says
    assert "Add ip4:192.0.2.25" in spf.says
    assert spf.found == ("v=spf1 include:other.example ~all",)
    assert spf.record_name == "acme.example"
    assert spf.record_value == "v=spf1 include:other.example ip4:192.0.2.25 ~all"
    # The record we ask for does pass, as pyspf evaluates it.
    zone(
        _with_server(
            {
                "acme.example": {"TXT": [spf.record_value]},
                "other.example": {"TXT": ["v=spf1 ip4:198.51.100.0/24 -all"]},
            }
        )
    )
    assert _check(dns_server)["SPF"].state == OK


def test_two_spf_records_are_an_error(dns_server, zone):
    records = ["v=spf1 ip4:192.0.2.25 -all", "v=spf1 include:other.example -all"]
    zone(_with_server({"acme.example": {"TXT": [*records, "google-site-verification=x"]}}))
    spf = _check(dns_server)["SPF"]
    assert spf.state == BAD
    assert "has 2 SPF records" in spf.says and "RFC 7208" in spf.says
    assert sorted(spf.found) == sorted(records)


def test_no_spf_record_says_which_one_to_publish(dns_server, zone):
    zone(_with_server({"acme.example": {"TXT": ["google-site-verification=x"]}}))
    spf = _check(dns_server)["SPF"]
    assert spf.state == WARN
    assert "acme.example has no SPF record" in spf.says
    assert (spf.record_name, spf.record_value) == ("acme.example", "v=spf1 ip4:192.0.2.25 ~all")


def test_more_than_ten_lookups_make_the_record_broken(dns_server, zone):
    includes = {f"i{n}.example": {"TXT": ["v=spf1 -all"]} for n in range(11)}
    record = "v=spf1 " + " ".join(f"include:i{n}.example" for n in range(11)) + " ip4:192.0.2.25"
    zone(_with_server({"acme.example": {"TXT": [record]}, **includes}))
    spf = _check(dns_server)["SPF"]
    assert spf.state == BAD and "is broken" in spf.says and "lookups" in spf.says.lower()


def test_dns_that_does_not_answer_is_could_not_check(dns_server, zone):
    zone(_with_server({"acme.example": {"TXT": ["v=spf1 ip4:192.0.2.25 -all"]}}))
    dns_server.silent.update({"acme.example", "_dmarc.acme.example"})
    findings = _check(dns_server)
    assert findings["SPF"].state == UNKNOWN
    assert findings["SPF"].says == mail_domain.COULD_NOT_CHECK
    assert findings["DMARC"].state == UNKNOWN


# DKIM ---------------------------------------------------------------------------------------


def test_dkim_published_key_matches(dns_server, zone):
    key = _key()
    # Published as some DNS hosts show it: split, with spaces inside the base64.
    value = mail_domain.dkim_record_value(key)
    spaced = value[:60] + " " + value[60:]
    zone(_with_server({"sel._domainkey.acme.example": {"TXT": [spaced]}}))
    dkim_line = _check(
        dns_server, dkim_domain="acme.example", dkim_selector="sel", dkim_private_key=key
    )["DKIM"]
    assert dkim_line.state == OK
    assert (
        dkim_line.says == "sel._domainkey.acme.example publishes the key your mail is signed with."
    )


def test_dkim_published_key_differs(dns_server, zone):
    key, other = _key(), _key()
    zone(
        _with_server(
            {"sel._domainkey.acme.example": {"TXT": [mail_domain.dkim_record_value(other)]}}
        )
    )
    dkim_line = _check(
        dns_server, dkim_domain="acme.example", dkim_selector="sel", dkim_private_key=key
    )["DKIM"]
    assert dkim_line.state == BAD and "publishes a different key" in dkim_line.says
    assert dkim_line.record_value == mail_domain.dkim_record_value(key)


def test_dkim_missing_asks_for_the_record_that_dkimpy_then_verifies(dns_server, zone):
    key = _key()
    zone(_with_server({}))
    dkim_line = _check(
        dns_server, dkim_domain="acme.example", dkim_selector="sel", dkim_private_key=key
    )["DKIM"]
    assert dkim_line.state == BAD and "No DKIM key is published" in dkim_line.says
    assert dkim_line.record_name == "sel._domainkey.acme.example"

    # Publish what we asked for; a message signed by the connector verifies against that DNS.
    zone(_with_server({dkim_line.record_name: {"TXT": [dkim_line.record_value]}}))
    connector = SmtpConnector(
        settings={
            "host": SERVER,
            "from_address": "Acme <accounts@acme.example>",
            "dkim_domain": "acme.example",
            "dkim_selector": "sel",
        },
        secrets={"dkim_private_key": key},
        config={},
    )
    outgoing = Outgoing(
        message_id=1,
        tenant_id=1,
        channel="email",
        recipient="client@example.com",
        subject="Invoice INV-1",
        text="Please find the invoice.",
        idempotency_key="m-1",
    )
    signed = connector.wire_bytes(build_email(outgoing, "Acme <accounts@acme.example>"))
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [dns_server.host], dns_server.port

    def ask_the_standin(name, timeout=5):
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(answer[0].strings)

    assert dkim.verify(signed, dnsfunc=ask_the_standin)
    assert (
        _check(dns_server, dkim_domain="acme.example", dkim_selector="sel", dkim_private_key=key)[
            "DKIM"
        ].state
        == OK
    )


def test_without_a_dkim_key_the_dkim_line_is_a_note(dns_server, zone):
    zone(_with_server({}))
    assert _check(dns_server)["DKIM"].state == INFO


# DMARC --------------------------------------------------------------------------------------


def test_dmarc_policy_is_reported(dns_server, zone):
    zone(
        _with_server(
            {"_dmarc.acme.example": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:d@acme.example"]}}
        )
    )
    dmarc = _check(dns_server)["DMARC"]
    assert (dmarc.state, dmarc.says) == (OK, "acme.example has a DMARC policy (p=quarantine).")
    zone(_with_server({}))
    dmarc = _check(dns_server)["DMARC"]
    assert dmarc.state == WARN and dmarc.record_value == "v=DMARC1; p=none"


# Pages --------------------------------------------------------------------------------------


def test_setup_email_step_without_own_server_says_no_dns_change(client, admin):
    page = client.get(f"/t/{admin.slug}/setup/email")
    assert page.status_code == 200
    assert "Your e-mail is sent by Duebook under your name" in page.text
    assert "No DNS change needed." in page.text
    assert "Your domain</h2>" not in page.text


def _connect_own_server(client, tenant, mailbox, **changes):
    saved = post_form(client, tenant, "smtp/connect", smtp_form(mailbox, **changes))
    assert saved.status_code == 303, saved.text


def test_setup_email_step_shows_the_domain_panel_and_checks_again(
    client,
    admin,
    mailbox,
    dns_server,
    zone,
):
    _connect_own_server(client, admin, mailbox)
    zone({"acme.example": {"TXT": ["v=spf1 ip4:203.0.113.9 -all"]}})
    page = client.get(f"/t/{admin.slug}/setup/email")
    assert page.status_code == 200
    assert "No DNS change needed." not in page.text
    assert "at accounts@acme.example" in page.text  # the From of the workspace's own server
    # The page is not held up by DNS: the panel asks for its check once shown.
    assert "Your domain</h2>" in page.text and "SPF:" not in page.text
    assert 'hx-trigger="load"' in page.text
    first = client.post(
        f"/t/{admin.slug}/setup/email/domain-check",
        headers={"HX-Request": "true", "X-CSRFToken": csrf_token_from(page.text)},
    )
    assert "SPF: Needs fixing." in first.text
    assert "<code>v=spf1 ip4:203.0.113.9 ip4:127.0.0.1 -all</code>" in first.text

    zone({"acme.example": {"TXT": ["v=spf1 ip4:203.0.113.9 ip4:127.0.0.1 -all"]}})
    again = client.post(
        f"/t/{admin.slug}/setup/email/domain-check",
        headers={"HX-Request": "true", "X-CSRFToken": csrf_token_from(page.text)},
    )
    assert again.status_code == 200
    assert again.text.lstrip().startswith('<section class="card mail-domain"')
    assert "SPF: Good." in again.text


def test_connection_page_shows_the_panel_and_a_dns_time_out_is_no_500(
    client,
    admin,
    mailbox,
    dns_server,
    zone,
):
    _connect_own_server(client, admin, mailbox)
    zone({"acme.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}})
    page = client.get(f"/t/{admin.slug}/integrations/smtp/connect")
    assert "Your domain</h2>" in page.text and "SPF:" not in page.text
    action = page.text.split('hx-post="')[1].split('"')[0]
    assert action.endswith("/domain-check")
    token = csrf_token_from(page.text)
    checked = client.post(action, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert "SPF: Good." in checked.text and "DMARC: Worth doing." in checked.text

    dns_server.silent.add("acme.example")
    again = client.post(action, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert again.status_code == 200
    assert "SPF: Could not check." in again.text
    assert "Check again</button>" in again.text
    # Without the CSRF token the check is refused, as every other form.
    assert client.post(action, headers={"HX-Request": "true"}).status_code == 400
