"""Client pages: create, edit in place, uniqueness, prospects and conversion, the list (search,
filters in the URL, sorting, pages, bulk actions), contacts and consent, sites, timeline."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.clients import services
from app.clients.models import Client, Contact
from tenants.binding import bound_schema, qualified
from tests.helpers import csrf_token_from, tenant_session

GSTIN_MH = "27AAPFU0939F1ZV"


@pytest.fixture
def owner_client(client, make_tenant, make_user, login):
    """A logged-in owner of a fresh tenant: (test client, tenant, owner, CSRF token)."""
    owner = make_user(full_name="Meera Owner")
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    return client, tenant, owner, token


def new_client(http, tenant, token, **fields):
    data = {
        "csrf_token": token,
        "full_name": "Kaveri Builders Pvt Ltd",
        "short_name": "Kaveri",
        "status": "active",
        "location": "local",
        "country": "IN",
        "region": "27",
        "gstin": GSTIN_MH,
        "payment_terms": "net",
        "payment_days": "30",
        "currency": "INR",
        "preferred_language": "en",
        "preferred_channel": "email",
        **fields,
    }
    return http.post(f"/t/{tenant.slug}/clients/new", data=data)


def test_create_client_and_see_it_on_its_page(owner_client):
    http, tenant, _, token = owner_client
    response = new_client(http, tenant, token, tags="key account")
    assert response.status_code == 303
    page = http.get(response.headers["Location"])
    assert "Kaveri Builders Pvt Ltd" in page.text and "AAPFU0939F" in page.text


def test_wrong_gstin_is_explained_next_to_the_field_and_nothing_is_saved(owner_client, db_session):
    http, tenant, _, token = owner_client
    response = new_client(http, tenant, token, gstin="27AAPFU0939F1ZW")
    assert response.status_code == 422
    assert 'id="gstin-error"' in response.text and "check digit" in response.text
    assert 'value="27AAPFU0939F1ZW"' in response.text  # what the user typed is kept
    assert tenant_session(db_session, tenant).scalars(select(Client)).all() == []


def test_names_are_unique_among_clients_not_deleted(owner_client, db_session):
    http, tenant, _, token = owner_client
    first = new_client(http, tenant, token)
    again = new_client(
        http, tenant, token, full_name="kaveri builders pvt ltd", short_name="KAVERI"
    )
    assert again.status_code == 422
    assert "Another client has this full name" in again.text
    assert "Another client has this short name" in again.text
    http.post(first.headers["Location"] + "/delete", data={"csrf_token": token})
    assert new_client(http, tenant, token).status_code == 303  # a deleted client's names


def test_deleted_client_is_gone_from_pages_but_kept(owner_client, db_session):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    http.post(url + "/delete", data={"csrf_token": token})
    assert http.get(url).status_code == 404
    assert "Kaveri" not in http.get(f"/t/{tenant.slug}/clients/").text
    kept = tenant_session(db_session, tenant).scalars(select(Client)).one()
    assert kept.deleted_at is not None


def test_inline_section_edit_saves_and_shows_errors_in_place(owner_client, db_session):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    htmx = {"HX-Request": "true"}
    form = http.get(url + "/sections/terms?edit=1", headers=htmx)
    assert form.status_code == 200 and "<html" not in form.text
    bad = http.post(
        url + "/sections/terms",
        headers=htmx,
        data={"csrf_token": token, "payment_terms": "custom", "payment_days": "30"},
    )
    assert bad.status_code == 422
    assert 'id="terms-payment_days-error"' in bad.text
    assert 'id="terms-payment_terms_note-error"' in bad.text
    good = http.post(
        url + "/sections/terms",
        headers=htmx,
        data={
            "csrf_token": token,
            "payment_terms": "immediate",
            "payment_days": "",
            "payment_terms_note": "",
        },
    )
    assert good.status_code == 200 and "Immediate" in good.text
    assert "Payment terms saved" in good.headers["HX-Trigger"]
    saved = tenant_session(db_session, tenant).scalars(select(Client)).one()
    assert (saved.payment_terms, saved.payment_days) == ("immediate", None)
    assert saved.gstin == GSTIN_MH  # fields of other sections untouched


def test_prospects_have_their_own_list_and_conversion_keeps_history(owner_client, db_session):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token, status="prospect").headers["Location"]
    row = ">Kaveri Builders Pvt Ltd</a>"
    clients_list = http.get(f"/t/{tenant.slug}/clients/").text
    prospects = http.get(f"/t/{tenant.slug}/clients/?prospects=1").text
    assert row not in clients_list and row in prospects
    http.post(url + "/convert", data={"csrf_token": token})
    assert row in http.get(f"/t/{tenant.slug}/clients/").text
    timeline = http.get(url + "?tab=timeline").text
    assert "converted from prospect" in timeline
    converted = tenant_session(db_session, tenant).scalars(select(Client)).one()
    assert converted.status == "active" and converted.converted_at is not None
    assert url.endswith(f"/clients/{converted.id}")  # the same record, not a copy


def test_engagement_manager_is_told_by_email(
    owner_client, db_session, make_user, add_member, run_jobs, received_mail
):
    http, tenant, _, token = owner_client
    manager = make_user(full_name="Arjun Manager")
    add_member(tenant, manager, role="collector")
    response = new_client(http, tenant, token, engagement_manager_user_id=str(manager.id))
    assert response.status_code == 303
    run_jobs()
    [mail] = received_mail()
    assert mail["To"] == manager.email and "Kaveri" in mail["Subject"]
    url = response.headers["Location"]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert url in body
    outsider = make_user()
    bad = new_client(
        http,
        tenant,
        token,
        full_name="Other Co",
        short_name="Other",
        gstin="",
        engagement_manager_user_id=str(outsider.id),
    )
    assert bad.status_code == 422 and "member of this workspace" in bad.text


@pytest.fixture
def many_clients(owner_client, db_session):
    http, tenant, owner, token = owner_client
    session = tenant_session(db_session, tenant)
    for i in range(60):
        session.add(
            Client(
                full_name=f"Client {i:03d} Pvt Ltd",
                short_name=f"C{i:03d}",
                location="local" if i % 3 else "foreign",
                country="IN" if i % 3 else "AU",
                currency="INR",
                payment_terms="net",
                payment_days=30,
                tags=["north"] if i % 2 else [],
                status="prospect" if i % 10 == 0 else "active",
            )
        )
    session.commit()
    session.close()
    return http, tenant, owner, token


def names_on(page_html: str) -> list[str]:
    return re.findall(r">(Client \d{3}) Pvt Ltd<", page_html)


def test_list_pages_forward_and_back_without_gaps_or_repeats(many_clients):
    http, tenant, _, _ = many_clients
    seen, url = [], f"/t/{tenant.slug}/clients/"
    pages = []
    while url:
        page = http.get(url).text
        pages.append(page)
        seen += names_on(page)
        nxt = re.search(r'href="([^"]*after=[^"]*)"', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    expected = [f"Client {i:03d}" for i in range(60) if i % 10]
    assert seen == expected  # 54 active clients, in name order, over three pages
    previous = re.search(r'href="([^"]*before=[^"]*)"', pages[-1]).group(1).replace("&amp;", "&")
    assert names_on(http.get(previous).text) == names_on(pages[-2])
    assert "54 clients" in pages[0]


def test_search_filters_and_sort_are_in_the_url(many_clients):
    http, tenant, _, _ = many_clients
    base = f"/t/{tenant.slug}/clients/"
    assert names_on(http.get(base + "?q=client 01").text) == [
        f"Client {i:03d}" for i in range(11, 20)
    ]
    foreign = names_on(http.get(base + "?location=foreign").text)
    assert foreign and all(int(n[-3:]) % 3 == 0 for n in foreign)
    tagged = http.get(base + "?tag=north&sort=-name")
    names = names_on(tagged.text)
    assert names == sorted(names, reverse=True) and all(int(n[-3:]) % 2 for n in names)
    assert "tag=north" in tagged.text and "sort=-name" in tagged.text  # links keep the filters
    fragment = http.get(base + "?q=client 005", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and names_on(fragment.text) == ["Client 005"]


def test_a_search_reads_the_same_pages_whether_its_matches_are_few_or_many(
    many_clients, monkeypatch
):
    """A search with few matches is read from its matches, one with many by walking the list
    in order (services.SEARCH_NARROWS): the pages, their order, the paging links and the count
    are the same either way."""
    http, tenant, _, _ = many_clients
    base = f"/t/{tenant.slug}/clients/"

    def walk(url: str) -> tuple[list[list[str]], list[str]]:
        pages, counts = [], []
        while url:
            html = http.get(url).text
            pages.append(names_on(html))
            counts += re.findall(r"([\d,]+\+?) clients?\b", html)[:1]
            found = re.search(r'href="([^"]*after=[^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        return pages, counts

    # "client 0" matches every client but the prospects (every tenth): 54, three pages.
    query = base + "?q=client 0&sort=-name"
    narrowed = walk(query)
    monkeypatch.setattr(services, "SEARCH_NARROWS", 10)
    walked = walk(query)
    assert narrowed == walked
    pages, counts = narrowed
    names = [name for page in pages for name in page]
    assert [len(page) for page in pages] == [25, 25, 4] and names == sorted(names, reverse=True)
    assert len(names) == len(set(names)) == 54 and counts[0] == "54"


def test_bulk_actions_tag_assign_and_set_status(many_clients, db_session, make_user, add_member):
    http, tenant, _, token = many_clients
    manager = make_user()
    add_member(tenant, manager, role="finance")
    session = tenant_session(db_session, tenant)
    ids = [str(c.id) for c in session.scalars(select(Client).order_by(Client.id).limit(3))]
    base = f"/t/{tenant.slug}/clients/bulk"
    for data in (
        {"action": "tag", "tag": "Priority"},
        {"action": "manager", "manager": str(manager.id)},
        {"action": "status", "status": "on_hold"},
    ):
        response = http.post(base, data={"csrf_token": token, "client_ids": ids, **data})
        assert response.status_code == 303
    session.expire_all()
    changed = session.scalars(select(Client).where(Client.id.in_([int(i) for i in ids]))).all()
    assert all(
        "priority" in c.tags
        and c.engagement_manager_user_id == manager.id
        and c.status == "on_hold"
        for c in changed
    )
    audited = session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "clients", AuditEntry.action == "update")
    ).all()
    assert len(audited) >= 9  # every client, every change, in the audit log
    session.close()


def test_contacts_with_consent_and_opt_out_honoured(owner_client, db_session):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    bad = http.post(
        url + "/contacts",
        data={"csrf_token": token, "full_name": "Ravi", "email": "ravi@", "phone": "12"},
    )
    assert bad.status_code == 422 and 'id="contact-email-error"' in bad.text
    assert 'id="contact-phone-error"' in bad.text
    http.post(
        url + "/contacts",
        data={
            "csrf_token": token,
            "full_name": "Ravi Kumar",
            "email": "ravi@example.com",
            "phone": "9876543210",
            "roles": ["billing", "escalation"],
        },
    )
    session = tenant_session(db_session, tenant)
    contact = session.scalars(select(Contact)).one()
    assert contact.phone == "+919876543210" and contact.roles == ["billing", "escalation"]
    assert services.may_contact(contact, "email") and not services.may_contact(contact, "sms")
    consent = f"{url}/contacts/{contact.id}/consent"
    http.post(
        consent,
        data={
            "csrf_token": token,
            "channel": "whatsapp",
            "state": "opted_in",
            "source": "signed form",
        },
    )
    http.post(
        consent,
        data={
            "csrf_token": token,
            "channel": "email",
            "state": "opted_out",
            "source": "replied STOP",
        },
    )
    no_source = http.post(
        consent,
        data={"csrf_token": token, "channel": "sms", "state": "opted_in", "source": ""},
        follow_redirects=True,
    )
    assert "Say how the consent was given" in no_source.text
    session.expire_all()
    assert (
        contact.whatsapp_consent == "opted_in" and contact.whatsapp_consent_source == "signed form"
    )
    assert contact.whatsapp_consent_at is not None
    assert services.may_contact(contact, "whatsapp")
    assert not services.may_contact(contact, "email")  # the opt-out wins
    assert contact.sms_consent is None
    session.close()


def test_sites_keep_coordinates_and_a_site_contact(owner_client, db_session):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    bad = http.post(
        url + "/sites",
        data={"csrf_token": token, "name": "Pune works", "latitude": "95", "longitude": "73.8"},
    )
    assert bad.status_code == 422 and 'id="site-latitude-error"' in bad.text
    ok = http.post(
        url + "/sites",
        data={
            "csrf_token": token,
            "name": "Pune works",
            "city": "Pune",
            "latitude": "18.520430",
            "longitude": "73.856744",
        },
    )
    assert ok.status_code == 303
    assert "18.520430, 73.856744" in http.get(url + "?tab=sites").text


def test_viewer_sees_clients_but_cannot_change_them(
    owner_client, make_user, add_member, login, app
):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    other = app.test_client()
    login(other, viewer)
    page = other.get(url)
    assert page.status_code == 200 and "Convert to client" not in page.text
    assert ">Edit</a>" not in page.text
    token = csrf_token_from(page.text)
    assert other.get(url + "/sections/tax?edit=1").status_code == 403
    assert other.post(url + "/sections/tax", data={"csrf_token": token}).status_code == 403
    assert other.post(url + "/delete", data={"csrf_token": token}).status_code == 403
    assert other.get(f"/t/{tenant.slug}/clients/new").status_code == 403


def test_timeline_shows_changes_to_the_client_and_its_contacts(owner_client):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    http.post(
        url + "/sections/identity",
        data={
            "csrf_token": token,
            "full_name": "Kaveri Infra",
            "short_name": "Kaveri",
            "status": "active",
            "external_id": "",
        },
    )
    http.post(
        url + "/contacts",
        data={"csrf_token": token, "full_name": "Ravi Kumar", "email": "ravi@example.com"},
    )
    timeline = http.get(url + "?tab=timeline").text
    assert "Kaveri Builders Pvt Ltd" in timeline and "Kaveri Infra" in timeline
    assert "Meera Owner added contact Ravi Kumar" in timeline


def test_the_timeline_says_changes_in_words_with_the_raw_diff_a_click_away(owner_client):
    """Issue 16, finding 10."""
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    terms = {"csrf_token": token, "payment_terms": "net", "payment_days": "45"}
    http.post(url + "/sections/terms", data=terms)
    commercial = {
        "csrf_token": token,
        "currency": "INR",
        "credit_limit": "200000",
        "preferred_language": "en",
        "preferred_channel": "email",
        "engagement_manager_user_id": "",
        "industry_id": "",
        "new_business_year": "",
        "tags": "",
    }
    http.post(url + "/sections/commercial", data=commercial)
    timeline = http.get(url + "?tab=timeline").text
    assert (
        "Meera Owner changed the payment terms of client Kaveri from Net 30 to Net 45" in timeline
    )
    assert "credit limit of client Kaveri from (none) to ₹2,00,000.00" in timeline
    raw = timeline.split("Net 45", 1)[1].split("</details>", 1)[0]
    assert "<details" in raw and "payment_days" in raw and "<ins>45</ins>" in raw


@pytest.mark.parametrize(
    ("tab", "fragment", "shows"),
    [
        ("notices", "/notices/client/{id}", "No notices"),
        ("aging", "/aging/clients/{id}", "Nothing owed"),
    ],
)
def test_notices_and_aging_tabs_load_their_areas_fragments(owner_client, tab, fragment, shows):
    http, tenant, _, token = owner_client
    url = new_client(http, tenant, token).headers["Location"]
    page = http.get(f"{url}?tab={tab}")
    client_id = int(url.rstrip("/").rsplit("/", 1)[1])
    path = f"/t/{tenant.slug}" + fragment.format(id=client_id)
    assert page.status_code == 200 and f'hx-get="{path}"' in page.text
    loaded = http.get(path, headers={"HX-Request": "true"})
    assert loaded.status_code == 200 and shows in loaded.text


def test_search_reads_the_trigram_index_after_thousands_of_new_clients(db_session, make_tenant):
    """After an import (or thousands of clients added between two autovacuums) the search
    index's new entries wait in its pending list, which every search reads whole: with the
    default 4 MB list PostgreSQL chose to compute the search text of every client instead
    (7.7x the bare route at 10,000 clients). The list is kept short, so the plan stays the
    index's whatever the size, and the search finds the same client either way."""
    session = tenant_session(db_session, make_tenant())
    schema = bound_schema(session)
    session.execute(
        text(
            f"INSERT INTO {qualified(schema, 'clients')} (full_name, short_name, location, "
            "country, currency, payment_terms, payment_days) "
            "SELECT 'Client ' || to_char(g, 'FM000000') || ' Pune Traders Pvt Ltd', 'C' || g, "
            "'local', 'IN', 'INR', 'net', 30 FROM generate_series(1, 4000) g"
        )
    )
    session.execute(text(f"ANALYZE {qualified(schema, 'clients')}"))
    query = services.filtered_clients(services.ClientFilters(q="003217"))
    sql = str(query.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    table = qualified(schema, "clients")  # text() SQL is not schema-translated
    plan = session.execute(text("EXPLAIN " + sql.replace("tenant.clients", table))).scalars()
    assert "ix_clients_search" in "\n".join(plan)
    assert [c.short_name for c in session.scalars(query)] == ["C3217"]
