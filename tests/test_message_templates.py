"""Message templates: rendered in a sandbox from plain values (no way to Python internals, a
misspelt variable is an error next to the field), previewed with the workspace's real invoice,
the defaults created once, the template for a send found by channel, purpose and language."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.campaigns.services import delete_template
from app.clients.models import Client, Contact
from app.collections.cases.interest_claims import interest_owed
from app.invoicing import services as invoicing
from app.message_templates import defaults, facts, services
from app.message_templates.models import MessageTemplate
from app.message_templates.rendering import (
    TemplateProblem,
    message_context,
    notice_vars,
    render_for_channel,
    template_errors,
)
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"


def add_client(session, name="Shree Ganesh Builders", short=None, **fields):
    values = dict(
        full_name=name,
        short_name=short or name.split()[0],
        location="local",
        country="IN",
        currency="INR",
        gstin=MH_GSTIN,
        payment_terms="net",
        payment_days=30,
        region="27",
    )
    values.update(fields)
    client = Client(**values)
    session.add(client)
    session.flush()
    return client


def add_contact(session, client, name, email=None, phone=None, roles=("billing",), **consent):
    contact = Contact(
        client_id=client.id, full_name=name, email=email, phone=phone, roles=list(roles), **consent
    )
    session.add(contact)
    session.flush()
    return contact


def issue_invoice(session, tenant, client, amount="200000.00", day=date(2026, 10, 16)):
    project = Project(
        client_id=client.id,
        name=f"Tower {client.id}",
        currency="INR",
        contract_value=Decimal(amount),
        start_date=date(2026, 10, 1),
    )
    session.add(project)
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Foundation",
        amount=Decimal(amount),
        due_rule="date",
        due_date=day,
        status="completed",
    )
    session.add(milestone)
    session.flush()
    invoice = invoicing.draft_from_milestones(session, tenant, project, [milestone], "18", "9954")
    return invoicing.issue(session, tenant, invoice, day)


@pytest.fixture
def books(db_session, make_tenant, make_user):
    owner = make_user()
    tenant = make_tenant(
        owner=owner, region="27", upi_vpa="shree@okhdfc", legal_name="Shree Traders Pvt Ltd"
    )
    session = tenant_session(db_session, tenant)
    client = add_client(session)
    contact = add_contact(session, client, "Asha Rao", email="asha@example.com")
    invoice = issue_invoice(session, tenant, client)
    session.commit()
    return tenant, owner, session, client, contact, invoice


def test_the_sandbox_refuses_python_internals_and_unknown_variables():
    escapes = [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact['__class__'] }}",
        "{{ contact.name|attr('__class__') }}",
        "{{ range(10) }}",
        "{{ lipsum() }}",
        "{% set x = contact.update({'name': 'x'}) %}{{ x }}",
    ]
    for source in escapes:
        assert template_errors("sms", None, source), source
    assert template_errors("email", "Hi", "Dear {{ contact.nmae }}") == {
        "body": "unknown variable contact.nmae"
    }
    assert template_errors("email", "Re {{ invoce.number }}", "Hello") == {
        "subject": "unknown variable invoce"
    }
    assert template_errors("email", "Hi", "{{ contact.name") == {
        "body": "line 1: unexpected end of template, expected 'end of print statement'."
    }
    assert "10,000" in template_errors("sms", None, "x" * 10_001)["body"]
    # Loops and local names are fine.
    ok = "{% for p in [1, 2] %}{{ loop.index }}{% endfor %}{% set n = contact.name %}{{ n }}"
    assert template_errors("sms", None, ok) == {}


def test_rendering_refuses_an_escape_even_if_it_was_stored():
    stored = MessageTemplate(channel="sms", body="{{ contact.name|attr('__class__') }}")
    with pytest.raises(TemplateProblem, match="unsafe"):
        render_for_channel(stored, {"contact": {"name": "Asha"}})


def test_html_part_escapes_what_names_contain_and_links_the_payment_link():
    template = MessageTemplate(
        channel="email",
        subject="For {{ client.name }}",
        body="Dear {{ contact.first_name }},\n\nPay here: {{ payment_link }}",
    )
    rendered = render_for_channel(
        template,
        {
            "client": {"name": "A & B <Traders>"},
            "contact": {"first_name": "<script>x</script>"},
            "payment_link": "upi://pay?pa=a@b&am=1.00",
        },
    )
    assert rendered.subject == "For A & B <Traders>"  # a subject is text, not HTML
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert '<a href="upi://pay?pa=a@b&amp;am=1.00">' in rendered.html
    assert rendered.text.startswith("Dear <script>x</script>,")


def in_app(app, make, *args):
    """`make(*args)` as a request or a job runs it: a message's pay link is signed with the
    app's secret."""
    with app.app_context():
        return make(*args)


def test_context_has_indian_amounts_dates_and_the_upi_link(app, books):
    tenant, _, session, client, contact, invoice = books
    context = in_app(app, message_context, session, tenant, client, contact, invoice, "notice_1")
    assert context["invoice"]["number"] == invoice.number
    assert context["invoice"]["total"] == "₹2,36,000.00"  # 2,00,000 + 18% GST
    assert context["amount_due"] == "₹2,36,000.00"
    assert context["invoice"]["due_date"] == invoice.due_date.strftime("%d %b %Y")
    assert context["contact"]["first_name"] == "Asha"
    assert context["notice"]["name"] == "first reminder"
    assert context["payment_link"].startswith("upi://pay?pa=shree@okhdfc&")
    assert "am=236000.00" in context["payment_link"]
    assert "/pay/" in context["pay_link"]  # the client's pay page (tests/test_paylinks.py)
    assert all(not hasattr(v, "_sa_instance_state") for v in context.values())


def test_whatsapp_parameters_and_sms_variables_are_ready_for_the_providers(app, books):
    tenant, _, session, client, contact, invoice = books
    context = in_app(app, message_context, session, tenant, client, contact, invoice)
    whatsapp = defaults.default_template("whatsapp", "notice_1")
    rendered = render_for_channel(whatsapp, context)
    assert rendered.payload() == {
        "whatsapp": {
            "type": "template",
            "name": "duebook_notice_1",
            "language": "en",
            "body_params": [
                "Asha",
                f"invoice {invoice.number}",
                "₹2,36,000.00",
                context["pay_link"],
                tenant.name,
            ],
        }
    }
    assert rendered.text.startswith(
        f"Dear Asha, a gentle reminder that invoice {invoice.number} for a total of ₹2,36,000.00"
    )
    sms = defaults.default_template("sms", "receipt")
    sms.dlt_template_id, sms.gateway_template_id = "1107161234567890123", "flow42"
    rendered = render_for_channel(sms, context)
    assert rendered.payload() == {
        "sms": {
            "gateway_template_id": "flow42",
            "dlt_template_id": "1107161234567890123",
            "variables": {"var1": invoice.number, "var2": tenant.name},
        }
    }
    mismatch = "Dear {{1}} and {{2}}\n---\n{{ contact.first_name }}"
    assert "1 parameter line" in template_errors("whatsapp", None, mismatch)["body"]


def test_defaults_are_created_once_and_each_renders(app, books):
    tenant, _, session, client, contact, invoice = books
    assert defaults.ensure_defaults(session) == 18
    assert defaults.ensure_defaults(session) == 0
    context = in_app(app, message_context, session, tenant, client, contact, invoice, "notice_2")
    for template in services.list_templates(session):
        assert template_errors(template.channel, template.subject, template.body) == {}
        assert render_for_channel(template, context).text
    email = services.template_for(session, "email", "notice_1", "en")
    text = render_for_channel(email, context)
    assert text.subject == f"Reminder: invoice {invoice.number} was due on " + (
        invoice.due_date.strftime("%d %b %Y")
    )
    # A deleted default stays deleted; the send still gets words.
    delete_template(session, email)
    assert defaults.ensure_defaults(session) == 0
    assert services.template_for(session, "email", "notice_1").id != email.id


def test_template_for_prefers_the_contacts_language_then_english(books):
    _, _, session, *_ = books
    hindi = MessageTemplate(
        name="Smaran",
        channel="sms",
        purpose="notice_1",
        language="hi",
        body="{{ contact.first_name }} ji, kripya bhugtan karein.",
    )
    session.add(hindi)
    session.flush()
    assert services.template_for(session, "sms", "notice_1", "hi").id == hindi.id
    english = services.template_for(session, "sms", "notice_1", "ta")
    assert english.language == "en" and english.purpose == "notice_1"


def test_the_pages_list_defaults_preview_real_data_and_show_errors_next_to_the_field(
    books, client, login, db_session
):
    tenant, owner, _, _, _, invoice = books
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/message-templates/")
    assert page.status_code == 200
    assert "1st notice" in page.text and "duebook_notice_1" in page.text
    assert "not synced" in page.text
    client.get(f"/t/{tenant.slug}/message-templates/")
    count = tenant_session(db_session, tenant).scalar(
        select(func.count()).select_from(MessageTemplate)
    )
    assert count == 18  # the second visit created nothing

    new = client.get(f"/t/{tenant.slug}/message-templates/new?channel=email")
    token = csrf_token_from(new.text)
    form = {
        "csrf_token": token,
        "channel": "email",
        "purpose": "campaign",
        "language": "en",
        "name": "Diwali greetings",
        "subject": "Season's greetings, {{ client.short_name }}",
        "body": "Dear {{ contact.first_name }},\n\nYour invoice {{ invoice.number }} "
        "of {{ invoice.total }}.",
    }
    preview = client.post(
        f"/t/{tenant.slug}/message-templates/preview", data=form, headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200
    assert 'id="preview"' in preview.text and "<form" not in preview.text  # the fragment only
    assert "Season&#39;s greetings, Shree" in preview.text
    assert "Dear Asha," in preview.text
    assert f"Your invoice {invoice.number} of ₹2,36,000.00." in preview.text

    bad = client.post(
        f"/t/{tenant.slug}/message-templates/", data={**form, "body": "Dear {{ contact.nmae }}"}
    )
    assert bad.status_code == 422
    assert 'id="body-error"' in bad.text and "unknown variable contact.nmae" in bad.text

    saved = client.post(f"/t/{tenant.slug}/message-templates/", data=form)
    assert saved.status_code == 303
    session = tenant_session(db_session, tenant)
    template = session.scalar(
        select(MessageTemplate).where(MessageTemplate.name == "Diwali greetings")
    )
    edit = client.get(f"/t/{tenant.slug}/message-templates/{template.id}")
    assert "Diwali greetings" in edit.text and "Dear Asha," in edit.text

    deleted = client.post(
        f"/t/{tenant.slug}/message-templates/{template.id}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 303
    assert client.get(f"/t/{tenant.slug}/message-templates/{template.id}").status_code == 404


def test_sync_approval_state_asks_a_worker(books, client, login, redis):
    pytest.importorskip("jobs.whatsapp", reason="jobs.whatsapp (the WhatsApp sync) not in yet")
    from jobs.queues import get_queue

    tenant, owner, *_ = books
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/message-templates/").text)
    response = client.post(
        f"/t/{tenant.slug}/message-templates/sync-whatsapp", data={"csrf_token": token}
    )
    assert response.status_code == 303
    with client.application.app_context():
        jobs = get_queue("sync").get_jobs()
    assert [(j.func_name, j.kwargs) for j in jobs] == [
        ("jobs.whatsapp.sync_whatsapp_templates", {"tenant_id": tenant.id})
    ]


# Notices of one invoice and of several -------------------------------------------------------


def _notice_context(session, tenant, client, contact, invoice, numbers, total, interest):
    context = message_context(session, tenant, client, contact, invoice, "notice_2", preview=True)
    context["notice"] = notice_vars(
        tenant, "notice_2", "INR", numbers, Decimal(total), Decimal(interest)
    )
    return context


def test_notice_variables_for_one_invoice_name_it_and_its_balance(app, books):
    tenant, _, session, client, contact, invoice = books
    notice = in_app(app, message_context, session, tenant, client, contact, invoice, "notice_1")[
        "notice"
    ]
    assert notice == {
        "level": "notice_1",
        "name": "first reminder",
        "total": "₹2,36,000.00",
        "invoice_count": 1,
        "invoice_numbers": invoice.number,
        "interest": "",
        "custom": {},  # a notice's own fields: none without a notice
    }
    for channel in ("email", "whatsapp", "sms"):
        context = _notice_context(
            session, tenant, client, contact, invoice, [invoice.number], "236000", "0"
        )
        text = render_for_channel(defaults.default_template(channel, "notice_2"), context).text
        assert f"invoice {invoice.number}" in text and "₹2,36,000.00" in text
        assert "1 invoices" not in text and "invoice_count" not in text


def test_notice_variables_for_several_invoices_name_them_all_in_the_tenants_locale(app, books):
    tenant, _, session, client, contact, invoice = books
    numbers = [invoice.number, "INV/26-27/00009", "INV/26-27/00012"]
    context = _notice_context(
        session, tenant, client, contact, invoice, numbers, "354123.40", "1240.5"
    )
    assert context["notice"]["total"] == "₹3,54,123.40"  # Indian grouping
    assert context["notice"]["interest"] == "₹1,240.50"
    listed = f"3 invoices ({', '.join(numbers)})"

    email = render_for_channel(defaults.default_template("email", "notice_2"), context)
    assert email.subject == "Second reminder: ₹3,54,123.40 overdue on 3 invoices"
    assert f"payment of ₹3,54,123.40, including interest of ₹1,240.50 against {listed}" in (
        email.text
    )
    assert "the oldest due on" in email.text

    # WhatsApp: the approved text is fixed, so one parameter carries the varying words; the
    # parameters keep their number and order whatever the count.
    whatsapp = render_for_channel(defaults.default_template("whatsapp", "notice_2"), context)
    params = whatsapp.whatsapp["body_params"]
    assert params[1:3] == ["₹3,54,123.40", listed] and len(params) == 6
    assert all("\n" not in p for p in params)
    assert f"₹3,54,123.40 on {listed} has been overdue since" in whatsapp.text

    # SMS: the same number of MSG91 variables for one invoice as for three (one DLT template).
    sms = defaults.default_template("sms", "notice_2")
    several = render_for_channel(sms, context).sms["variables"]
    one = render_for_channel(
        sms,
        _notice_context(session, tenant, client, contact, invoice, [invoice.number], "236000", "0"),
    ).sms
    assert several["var2"] == listed and one["variables"]["var2"] == f"invoice {invoice.number}"
    assert len(several) == len(one["variables"]) == 3

    for purpose in ("notice_1", "notice_final", "notice_legal"):
        for channel in ("email", "whatsapp", "sms"):
            text = render_for_channel(defaults.default_template(channel, purpose), context).text
            assert "3 invoices" in text and "₹3,54,123.40" in text, (channel, purpose)


def test_notice_variables_are_known_to_the_checker_and_a_misspelt_one_is_not():
    body = "{{ notice.total }} on {{ notice.invoice_count }}: {{ notice.invoice_numbers }}"
    assert template_errors("sms", None, body + " {{ notice.interest }} {{ notice.level }}") == {}
    assert template_errors("sms", None, "{{ notice.totl }}") == {
        "body": "unknown variable notice.totl"
    }


def test_the_preview_of_a_notice_template_lists_the_clients_open_invoices(books):
    tenant, _, session, client, contact, invoice = books
    project = Project(
        client_id=client.id,
        name="Annexe",
        currency="INR",
        contract_value=Decimal("50000"),
        start_date=date(2026, 10, 1),
    )
    session.add(project)
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Slab",
        amount=Decimal("50000"),
        due_rule="date",
        due_date=date(2026, 10, 20),
        status="completed",
    )
    session.add(milestone)
    session.flush()
    second = invoicing.draft_from_milestones(session, tenant, project, [milestone], "18", "9954")
    invoicing.issue(session, tenant, second, date(2026, 10, 20))
    raw = {
        "name": "x",
        "channel": "sms",
        "purpose": "notice_1",
        "language": "en",
        "body": "{{ notice.invoice_count }}|{{ notice.invoice_numbers }}|{{ notice.total }}",
        "preview_invoice": str(second.id),
    }
    shown = services.preview(session, tenant, raw)
    assert shown.errors == {}
    # Oldest due first; 2,36,000 + 59,000 (50,000 + 18% GST).
    assert shown.rendered.text == f"2|{invoice.number}, {second.number}|₹2,95,000.00"


def test_a_template_too_large_or_too_slow_to_render_is_refused_in_preview_and_save(
    books, client, login
):
    tenant, owner, *_ = books
    nested_loops = "{% for a in contact.name %}" * 6 + "{{ a }}" + "{% endfor %}" * 6
    login(client, owner)
    new = client.get(f"/t/{tenant.slug}/message-templates/new?channel=email")
    form = {
        "csrf_token": csrf_token_from(new.text),
        "channel": "email",
        "purpose": "campaign",
        "language": "en",
        "name": "Huge",
        "subject": "Hello",
        "body": "{{ 'a' * 50000000 }}",
    }
    preview = client.post(
        f"/t/{tenant.slug}/message-templates/preview", data=form, headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200
    assert "longer than 100,000 characters" in preview.text and "aaaaaaaaaa" not in preview.text
    for body in ("{{ 'x' * 5000000 }}", nested_loops):
        saved = client.post(f"/t/{tenant.slug}/message-templates/", data={**form, "body": body})
        assert saved.status_code == 422
        assert 'id="body-error"' in saved.text
    slow = client.post(f"/t/{tenant.slug}/message-templates/", data={**form, "body": nested_loops})
    assert "takes too long to render" in slow.text


def test_collections_tells_templates_the_interest_and_without_it_there_is_none(app, monkeypatch):
    # Registered by create_app: the interest still owed (less any paid, waived or written off).
    assert facts._interest_calculation is interest_owed
    monkeypatch.setattr(facts, "_interest_calculation", None)
    invoices = [SimpleNamespace(id=7), SimpleNamespace(id=8)]
    assert facts.late_interest(None, invoices, date(2026, 12, 1)) == {
        7: Decimal("0.00"),
        8: Decimal("0.00"),
    }
