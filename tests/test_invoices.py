"""Invoices from milestones: the GST regime from the supplier's and client's states, totals that
add up to their lines, numbers only on issue and consecutive per financial year, due dates on
business days, one live invoice per milestone, void keeps the number, and the pages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from app.clients.models import Client
from app.invoicing import services
from app.invoicing.models import Invoice
from app.projects.models import Milestone, MilestoneTransition, Project
from app.settings.services import workspace_settings
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra
KA_GSTIN = "29AAPFU0939F1ZV"  # Karnataka (the shape is what matters here)


@pytest.fixture
def books(db_session, make_tenant, make_user):
    """A tenant in Maharashtra and a factory of projects with done milestones."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    counter = iter(range(1, 1000))

    def project(
        amounts=("1000.00",),
        country="IN",
        gstin=MH_GSTIN,
        region=None,
        status="completed",
        approval=False,
        terms=("net", 30),
    ):
        n = next(counter)
        client = Client(
            full_name=f"Client {n}",
            short_name=f"C{n}",
            location="local" if country == "IN" else "foreign",
            country=country,
            currency="INR",
            gstin=gstin,
            region=region,
            payment_terms=terms[0],
            payment_days=terms[1],
        )
        session.add(client)
        session.flush()
        value = sum(Decimal(a) for a in amounts)
        proj = Project(
            client_id=client.id,
            name=f"Project {n}",
            contract_value=value,
            currency="INR",
            start_date=date(2027, 1, 4),
            requires_approval=approval,
        )
        session.add(proj)
        session.flush()
        milestones = [
            Milestone(
                project_id=proj.id,
                position=i,
                name=f"Stage {i}",
                amount=Decimal(a),
                due_rule="date",
                due_date=date(2027, 2, 1),
                status=status,
            )
            for i, a in enumerate(amounts, start=1)
        ]
        session.add_all(milestones)
        session.flush()
        return proj, milestones

    return tenant, session, project


def test_intra_state_supply_gets_cgst_and_sgst_that_add_up(books):
    tenant, session, project = books
    proj, milestones = project(("100.05", "333.33", "1000.00"))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "998311")
    assert invoice.tax_regime == "intra" and invoice.place_of_supply == "27"
    first = invoice.lines[0]  # 18% of 100.05 = 18.009 -> 18.01; CGST carries the odd paisa
    assert (first.cgst, first.sgst, first.igst) == (Decimal("9.01"), Decimal("9.00"), 0)
    assert invoice.subtotal == Decimal("1433.38")
    assert invoice.cgst == sum(line.cgst for line in invoice.lines)
    assert invoice.sgst == sum(line.sgst for line in invoice.lines)
    assert invoice.total == sum(line.total for line in invoice.lines)
    assert invoice.total == invoice.subtotal + invoice.cgst + invoice.sgst
    assert invoice.igst == invoice.other_tax == 0
    assert invoice.number is None and invoice.status == "draft"
    assert all(line.hsn_sac == "998311" for line in invoice.lines)


def test_inter_state_supply_gets_igst_and_the_amount_in_words(books):
    tenant, session, project = books
    proj, milestones = project(("1000.00",), gstin=KA_GSTIN)
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert (invoice.tax_regime, invoice.place_of_supply) == ("inter", "29")
    assert (invoice.igst, invoice.cgst, invoice.sgst) == (Decimal("180.00"), 0, 0)
    assert invoice.total == Decimal("1180.00")
    assert invoice.amount_in_words == "Rupees One Thousand One Hundred Eighty Only"


def test_client_without_gstin_is_placed_by_its_state(books):
    tenant, session, project = books
    proj, milestones = project(gstin=None, region="Maharashtra")
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert invoice.tax_regime == "intra" and invoice.recipient_gstin is None


def test_foreign_client_is_a_zero_rated_export(books):
    tenant, session, project = books
    proj, milestones = project(("2500.50",), country="US", gstin=None)
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert invoice.tax_regime == "export" and invoice.place_of_supply is None
    assert invoice.cgst == invoice.sgst == invoice.igst == invoice.other_tax == 0
    assert invoice.total == invoice.subtotal == Decimal("2500.50")


def test_numbers_only_on_issue_consecutive_in_issue_order(books):
    tenant, session, project = books
    proj, milestones = project(("100", "200"))
    first = services.draft_from_milestones(session, tenant, proj, milestones[:1], "18", "9983")
    second = services.draft_from_milestones(session, tenant, proj, milestones[1:], "18", "9983")
    assert first.number is None and second.number is None
    services.issue(session, tenant, second, date(2027, 2, 1))
    services.issue(session, tenant, first, date(2027, 2, 2))
    assert (second.number, first.number) == ("INV/26-27/00001", "INV/26-27/00002")
    assert first.fiscal_year == second.fiscal_year == "2026-27"
    assert all(m.status == "invoiced" for m in milestones)
    moves = session.scalars(
        select(MilestoneTransition).where(MilestoneTransition.to_status == "invoiced")
    ).all()
    assert {(m.milestone_id, m.from_status) for m in moves} == {
        (milestones[0].id, "completed"),
        (milestones[1].id, "completed"),
    }
    # A new financial year starts again at 1.
    proj2, later = project(("50",))
    april = services.draft_from_milestones(session, tenant, proj2, later, "18", "9983")
    services.issue(session, tenant, april, date(2027, 4, 1))
    assert april.number == "INV/27-28/00001"
    with pytest.raises(services.InvoiceError, match="Only drafts"):
        services.issue(session, tenant, april, date(2027, 4, 2))


@pytest.mark.parametrize(
    ("today", "due"),
    [
        (date(2026, 12, 27), date(2027, 1, 27)),  # +30 = 26 Jan 2027, Republic Day
        (date(2027, 2, 4), date(2027, 3, 8)),  # +30 = Saturday 6 Mar 2027
    ],
)
def test_due_date_from_net_30_rolls_to_a_business_day(books, today, due):
    tenant, session, project = books
    proj, milestones = project(terms=("net", 30))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, invoice, today)
    assert (invoice.issue_date, invoice.due_date) == (today, due)


def test_due_date_rules():
    assert services.due_date("mfi", 30, date(2027, 3, 10), "IN").day == date(2027, 4, 30)
    assert services.due_date("immediate", None, date(2027, 3, 3), "IN").day == date(2027, 3, 3)
    assert services.due_date("immediate", None, date(2027, 3, 10), "IN").day == date(2027, 3, 11)
    custom = services.due_date("custom", None, date(2027, 3, 13), "IN")
    assert custom.day == date(2027, 3, 15) and custom.note == "as agreed"  # Saturday -> Monday


def test_a_milestone_is_on_one_live_invoice_at_most(books):
    tenant, session, project = books
    proj, milestones = project()
    draft = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    with pytest.raises(services.InvoiceError, match="Already on an invoice"):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.void(session, draft)  # a void draft frees the milestone
    again = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, again, date(2027, 2, 1))
    with pytest.raises(services.InvoiceError, match="only completed milestones"):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")


def test_planned_milestones_are_refused_with_a_clear_message(books):
    tenant, session, project = books
    proj, milestones = project(status="planned")
    refusal = "Stage 1 is planned: only completed milestones can be invoiced"
    with pytest.raises(services.InvoiceError, match=refusal):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    approval, waiting = project(status="completed", approval=True)
    with pytest.raises(services.InvoiceError, match="needs approval first"):
        services.draft_from_milestones(session, tenant, approval, waiting, "18", "9983")


def test_void_keeps_the_number_and_frees_the_milestones(books):
    tenant, session, project = books
    proj, milestones = project(approval=True, status="approved")
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, invoice, date(2027, 2, 1))
    number = invoice.number
    services.void(session, invoice)
    assert (invoice.status, invoice.number) == ("void", number)
    assert milestones[0].status == "approved"
    with pytest.raises(services.InvoiceError, match="cannot be voided"):
        services.void(session, invoice)
    replacement = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, replacement, date(2027, 2, 2))
    assert replacement.number == "INV/26-27/00002"  # the voided number is not used again


def test_pages_for_finance_and_a_viewer_cannot_post(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    finance, viewer = make_user(), make_user()
    add_member(tenant, finance, role="finance")
    add_member(tenant, viewer, role="viewer")
    session = tenant_session(db_session, tenant)
    customer = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        gstin=KA_GSTIN,
        payment_terms="net",
        payment_days=30,
    )
    session.add(customer)
    session.flush()
    proj = Project(
        client_id=customer.id,
        name="Tower A",
        contract_value=Decimal("1000"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(proj)
    session.flush()
    done = Milestone(
        project_id=proj.id,
        position=1,
        name="Foundation",
        amount=Decimal("1000"),
        due_rule="date",
        due_date=date(2027, 2, 1),
        status="completed",
    )
    session.add(done)
    session.commit()

    login(client, finance)
    project_page = client.get(f"/t/{tenant.slug}/projects/{proj.id}").text
    assert "Raise invoice" in project_page
    token = csrf_token_from(project_page)
    created = client.post(
        f"/t/{tenant.slug}/invoices/from-project/{proj.id}",
        data={"csrf_token": token, "milestone_ids": done.id},
    )
    assert created.status_code == 303
    url = created.headers["Location"]
    page = client.get(url)
    assert page.status_code == 200
    assert "Draft — not a tax invoice yet" in page.text and ">Issue</button>" in page.text
    assert "IGST" in page.text and "CGST" not in page.text
    assert "29 – Karnataka" in page.text and KA_GSTIN in page.text
    assert "Rupees One Thousand One Hundred Eighty Only" in page.text
    assert "Tax payable on reverse charge</dt><dd>No" in page.text
    invoice_id = int(url.rstrip("/").rsplit("/", 1)[1])

    other = app.test_client()
    login(other, viewer)
    seen = other.get(url)
    assert seen.status_code == 200 and ">Issue</button>" not in seen.text
    viewer_token = csrf_token_from(other.get(f"/t/{tenant.slug}/projects/{proj.id}").text)
    for action in ("issue", "void"):
        refused = other.post(f"{url}/{action}", data={"csrf_token": viewer_token})
        assert refused.status_code == 403
    assert (
        other.post(
            f"/t/{tenant.slug}/invoices/from-project/{proj.id}",
            data={"csrf_token": viewer_token, "milestone_ids": done.id},
        ).status_code
        == 403
    )

    issued = client.post(f"{url}/issue", data={"csrf_token": token})
    assert issued.status_code == 303
    page = client.get(url).text
    assert "Tax invoice INV/26-27/00001" in page or "Tax invoice INV/" in page
    assert "Draft — not a tax invoice yet" not in page
    check = tenant_session(db_session, tenant)
    stored = check.get(Invoice, invoice_id)
    assert stored.status == "issued" and stored.number.startswith("INV/")
    assert check.get(Milestone, done.id).status == "invoiced"


# Several milestones, invoices by hand, the lifecycle, the workspace's settings -----------------


def test_one_invoice_for_several_selected_milestones_from_the_project_page(
    books, client, login, db_session, make_user, add_member
):
    tenant, session, project = books
    proj, milestones = project(("100.00", "200.00", "300.00"))
    finance = make_user()
    add_member(tenant, finance, role="finance")
    session.commit()
    login(client, finance)
    page = client.get(f"/t/{tenant.slug}/projects/{proj.id}").text
    assert "Raise one invoice for the selected" in page and page.count(">Raise invoice<") == 3
    assert page.count('form="raise-selected" name="milestone_ids"') == 3
    made = client.post(
        f"/t/{tenant.slug}/invoices/from-project/{proj.id}",
        data={
            "csrf_token": csrf_token_from(page),
            "milestone_ids": [milestones[0].id, milestones[2].id],
        },
    )
    assert made.status_code == 303
    invoice_id = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    invoice = tenant_session(db_session, tenant).get(Invoice, invoice_id)
    assert [line.milestone_id for line in invoice.lines] == [milestones[0].id, milestones[2].id]
    assert invoice.subtotal == Decimal("400.00")


def _lines(*rows):
    return [services.ManualLine(*row) for row in rows]


def test_an_invoice_by_hand_follows_the_same_tax_rules(books):
    tenant, session, project = books
    proj, _ = project()
    local = proj.client
    invoice = services.draft_by_hand(
        session,
        tenant,
        local,
        _lines(
            ("Site survey", "998311", "2", "1,250.50", "18"),
            ("", "", "1", "", "18"),  # a blank row is left out
            ("Travel", "", "1.5", "333.33", ""),
        ),
    )
    assert invoice.status == "draft" and invoice.project_id is None
    assert invoice.tax_regime == "intra" and invoice.place_of_supply == "27"
    survey, travel = invoice.lines
    assert (survey.taxable_value, survey.cgst, survey.sgst) == (
        Decimal("2501.00"),
        Decimal("225.09"),
        Decimal("225.09"),
    )
    assert travel.taxable_value == Decimal("500.00") and travel.tax_rate == 18  # default rate
    assert invoice.total == sum(line.total for line in invoice.lines)
    assert invoice.subtotal + invoice.cgst + invoice.sgst == invoice.total

    workspace_settings(session, tenant.id).lut_reference = "AD270000123456X"
    foreign, _ = project(country="US", gstin=None)
    export = services.draft_by_hand(
        session, tenant, foreign.client, _lines(("Design", "998391", "1", "1000", "18"))
    )
    assert export.tax_regime == "export" and export.lines[0].tax_rate == 0
    assert export.total == Decimal("1000.00") and export.lut_reference == "AD270000123456X"


def test_an_invoice_by_hand_reports_every_error_by_field_and_line(books):
    tenant, session, _ = books
    with pytest.raises(services.InvoiceInvalid) as invalid:
        services.draft_by_hand(
            session,
            tenant,
            None,
            _lines(("", "12", "0", "abc", "101"), ("Ok", "", "1.0005", "-1", "18")),
        )
    errors = invalid.value.errors
    assert set(errors) == {
        "client_id",
        "lines.0.description",
        "lines.0.hsn_sac",
        "lines.0.quantity",
        "lines.0.unit_price",
        "lines.0.tax_rate",
        "lines.1.quantity",
        "lines.1.unit_price",
    }
    with pytest.raises(services.InvoiceInvalid) as invalid:
        services.draft_by_hand(session, tenant, None, [])
    assert "lines" in invalid.value.errors


def test_the_hand_made_invoice_page_adds_lines_and_shows_errors_next_to_them(
    books, client, login, db_session, make_user, add_member
):
    tenant, session, project = books
    proj, _ = project()
    finance = make_user()
    add_member(tenant, finance, role="finance")
    session.commit()
    login(client, finance)
    url = f"/t/{tenant.slug}/invoices/new?client_id={proj.client_id}"
    page = client.get(url).text
    assert page.count("<tr data-line>") == 3 and "+ Add line" in page
    row = client.get(f"/t/{tenant.slug}/invoices/new/line", headers={"HX-Request": "true"}).text
    assert row.count("<tr data-line>") == 1 and 'name="unit_price"' in row
    assert client.get(f"/t/{tenant.slug}/invoices/new/line?remove=1").text == ""
    options = client.get(f"/t/{tenant.slug}/clients/pick?client_q={proj.client.short_name}")
    assert f'value="{proj.client_id}"' in options.text
    token = csrf_token_from(page)
    form = {
        "csrf_token": token,
        "client_id": proj.client_id,
        "description": ["Survey", "Travel"],
        "hsn_sac": ["998311", ""],
        "quantity": ["1", "x"],
        "unit_price": ["100", "50"],
        "tax_rate": ["18", "18"],
    }
    refused = client.post(f"/t/{tenant.slug}/invoices/new", data=form)
    assert refused.status_code == 422
    assert 'id="line-1-quantity-error"' in refused.text and 'aria-invalid="true"' in refused.text
    assert 'value="Travel"' in refused.text  # what was typed stays
    more = client.post(f"/t/{tenant.slug}/invoices/new", data={**form, "add_line": "1"})
    assert more.status_code == 200 and more.text.count("<tr data-line>") == 3
    made = client.post(f"/t/{tenant.slug}/invoices/new", data={**form, "quantity": ["1", "2"]})
    assert made.status_code == 303
    page = client.get(made.headers["Location"]).text
    assert "Draft — not a tax invoice yet" in page and "Travel" in page


def test_lifecycle_sent_overdue_paid_and_back(app, books, db_session):
    from app.payments import services as payments
    from jobs.tasks import mark_overdue_invoices_for_tenant

    tenant, session, project = books
    proj, milestones = project(("1000.00",))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "0", "9983")
    with pytest.raises(services.InvoiceError, match="draft: it cannot be marked as sent"):
        services.mark_sent(session, invoice)
    services.issue(session, tenant, invoice, date(2026, 9, 1))  # due 1 Oct 2026 (past)
    services.mark_sent(session, invoice)
    assert invoice.status == "sent" and invoice.sent_at is not None
    with pytest.raises(services.InvoiceError, match="already"):
        services.mark_sent(session, invoice)
    # the daily job, in the tenant's own date
    assert services.mark_overdue(session, date(2026, 10, 1)) == 0  # the due day itself
    session.commit()
    with app.app_context():
        assert mark_overdue_invoices_for_tenant(tenant_id=tenant.id) == 1
        assert mark_overdue_invoices_for_tenant(tenant_id=tenant.id) == 0  # again: nothing
    session.refresh(invoice)
    assert invoice.status == "overdue"
    payment = payments.record_payment(
        session, proj.client, {"amount": "400", "received_on": "2026-10-10", "method": "cash"}
    )
    [allocation] = payments.allocate(session, payment, [(invoice.id, "400", "", "", "")])
    assert (invoice.status, milestones[0].status) == ("partly_paid", "partly_paid")
    payments.unallocate(session, allocation)
    assert (invoice.status, milestones[0].status) == ("overdue", "invoiced")
    # nothing paid any more: it can still be voided, and its milestone is free again
    services.void(session, invoice)
    assert (invoice.status, milestones[0].status) == ("void", "completed")


def test_dispute_resolve_and_write_off(books, db_session):
    from app.audit.models import AuditEntry
    from app.payments import services as payments

    tenant, session, project = books
    proj, milestones = project(("1000.00",))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "0", "9983")
    services.issue(session, tenant, invoice, date(2027, 3, 1))  # due in the future
    with pytest.raises(services.InvoiceInvalid):
        services.dispute(session, invoice, "  ")
    services.dispute(session, invoice, "Work not accepted yet")
    assert invoice.status == "disputed" and invoice.dispute_reason == "Work not accepted yet"
    with pytest.raises(services.InvoiceError, match="disputed: it cannot be written off"):
        services.write_off(session, invoice, "Bad debt")
    payment = payments.record_payment(
        session, proj.client, {"amount": "300", "received_on": "2027-03-05", "method": "cash"}
    )
    payments.allocate(session, payment, [(invoice.id, "300", "", "", "")])
    assert invoice.status == "disputed"  # a dispute holds while money is still owed
    services.resolve_dispute(session, invoice, date(2027, 3, 10))
    assert invoice.status == "partly_paid" and invoice.disputed_at is None
    with pytest.raises(services.InvoiceError, match="cannot be resolved"):
        services.resolve_dispute(session, invoice)
    with pytest.raises(services.InvoiceInvalid) as invalid:
        services.write_off(session, invoice, "")
    assert "write_off_reason" in invalid.value.errors
    services.write_off(session, invoice, "Client closed down")
    assert invoice.status == "written_off" and invoice.written_off_amount == Decimal("700.00")
    assert payments.outstanding(session, invoice) == 0
    assert invoice.id not in {o.invoice.id for o in payments.open_invoices(session, proj.client_id)}
    for action in (
        lambda: services.write_off(session, invoice, "again"),
        lambda: services.dispute(session, invoice, "x"),
        lambda: services.void(session, invoice),
    ):
        with pytest.raises(services.InvoiceError, match="written off"):
            action()
    session.commit()
    entries = tenant_session(db_session, tenant).scalars(select(AuditEntry))
    audited = [str(e.changes) for e in entries if "write_off_reason" in str(e.changes)]
    assert audited and "Client closed down" in audited[0] and "written_off" in audited[0]


def test_the_workspace_settings_number_format_gstin_and_lut(books):
    tenant, session, project = books
    workspace = workspace_settings(session, tenant.id)
    workspace.invoice_number_format = "AC-{fy_short}-{seq:04d}"
    workspace.gstin = "27AAAAA0000A1Z5"
    proj, milestones = project()
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert invoice.supplier_gstin == "27AAAAA0000A1Z5"
    services.issue(session, tenant, invoice, date(2027, 1, 5))
    assert invoice.number == "AC-26-27-0001"
    workspace.invoice_number_format = "{series}/{fy}/{fy}/{seq}"  # could exceed 16 characters
    other, more = project()
    draft = services.draft_from_milestones(session, tenant, other, more, "18", "9983")
    with pytest.raises(services.InvoiceError, match="number format cannot be used"):
        services.issue(session, tenant, draft, date(2027, 1, 5))
    workspace.invoice_number_format = None
    assert services.number_format(session, tenant).template == services.DEFAULT_FORMAT


def test_lifecycle_pages_refuse_with_a_message(books, client, login, make_user, add_member):
    tenant, session, project = books
    proj, milestones = project()
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, invoice, date(2027, 1, 5))
    finance = make_user()
    add_member(tenant, finance, role="finance")
    session.commit()
    login(client, finance)
    url = f"/t/{tenant.slug}/invoices/{invoice.id}"
    page = client.get(url).text
    token = csrf_token_from(page)
    assert "Mark as sent" in page and "Write off what is still owed" in page
    assert client.post(f"{url}/sent", data={"csrf_token": token}).status_code == 303
    again = client.post(f"{url}/sent", data={"csrf_token": token}, follow_redirects=True).text
    assert "already marked as sent" in again
    missing = client.post(f"{url}/dispute", data={"csrf_token": token, "dispute_reason": ""})
    assert missing.status_code == 422 and 'id="dispute_reason-error"' in missing.text
    client.post(f"{url}/dispute", data={"csrf_token": token, "dispute_reason": "Wrong rate"})
    page = client.get(url).text
    assert "Resolve the dispute" in page and "Wrong rate" in page
    refused = client.post(
        f"{url}/write-off",
        data={"csrf_token": token, "write_off_reason": "x"},
        follow_redirects=True,
    ).text
    assert "disputed: it cannot be written off" in refused
    client.post(f"{url}/resolve", data={"csrf_token": token, "resolution_note": "Rate agreed"})
    done = client.post(
        f"{url}/write-off",
        data={"csrf_token": token, "write_off_reason": "Bad debt"},
        follow_redirects=True,
    ).text
    assert "written off" in done and "Bad debt" in done


def test_the_invoice_page_reads_its_invoice_lines_client_and_project_at_once(books):
    tenant, session, project = books
    proj, milestones = project(("100.00", "250.00"))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "998311")
    expected = (session.get(Client, proj.client_id).full_name, proj.name)
    invoice_id = invoice.id
    session.commit()
    session.expunge_all()
    statements = []
    listener = lambda *a: statements.append(1)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        found, client, project = services.invoice_for_page(session, invoice_id)
        shown = (client.full_name, project.name)
        lines = [(line.position, line.taxable_value) for line in found.lines]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert shown == expected
    assert lines == [(1, Decimal("100.00")), (2, Decimal("250.00"))]
    assert len(statements) == 1
    assert services.invoice_for_page(session, invoice_id + 1000) is None
