"""Workspace settings: tax ids checked for the workspace's country with the error next to the
field, nothing saved while any field is wrong, admin-only; the logo kept in storage with its
file following the transaction (removed on rollback, the old one deleted after commit)."""

from __future__ import annotations

import io
from datetime import time

import pytest

from app.core.storage import get_storage
from app.core.tax_ids import gstin_check_character
from app.settings import services
from app.settings.models import WorkspaceSettings
from tenants.models import Tenant
from tests.helpers import csrf_token_from, tenant_session

KA_GSTIN = "29AAPFU0939F1Z" + gstin_check_character("29AAPFU0939F1Z")
MH_GSTIN = "27AAPFU0939F1ZV"
ATO_EXAMPLE_ABN = "51 824 753 556"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0" + bytes(64)


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    """Files of this test go to a folder of its own."""
    return storage_root


def valid(**changes) -> dict:
    return {
        "brand_colour": "#1f5f8b",
        "send_window_start": "09:00",
        "send_window_end": "19:00",
        **changes,
    }


def test_gstin_gives_state_and_pan(make_tenant):
    tenant = make_tenant()
    out, errors = services.clean_settings(valid(gstin=KA_GSTIN.lower()), tenant)
    assert errors == {}
    assert (out["gstin"], out["pan"], out["region"]) == (KA_GSTIN, "AAPFU0939F", "Karnataka")


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"gstin": MH_GSTIN, "region": "Karnataka"}, "gstin", "registered in Maharashtra"),
        ({"gstin": MH_GSTIN[:-1] + "W"}, "gstin", "wrong check digit"),
        ({"gstin": KA_GSTIN, "pan": "ABCPE1234F"}, "pan", "does not match"),
        ({"region": "Atlantis"}, "region", "Indian state"),
        ({"upi_vpa": "not a vpa"}, "upi_vpa", "name@bank"),
        ({"abn": ATO_EXAMPLE_ABN}, "abn", "Australia"),
        ({"brand_colour": "blue"}, "brand_colour", "#rrggbb"),
        ({"invoice_number_format": "{series}/{fy}/{seq:09d}"}, "invoice_number_format", "16"),
        ({"invoice_number_format": "INV {seq}"}, "invoice_number_format", "letters, digits"),
        ({"send_window_start": "9am"}, "send_window_start", "HH:MM"),
        ({"send_window_start": "20:00"}, "send_window_end", "end after it starts"),
        ({"reply_to": "accounts at kaveri"}, "reply_to", "not valid"),
        ({"sender_name": "Kaveri <billing@kaveri.in>"}, "sender_name", "A name only"),
        ({"sender_name": "Kaveri\r\nBcc: x@y.in"}, "sender_name", "A name only"),
    ],
)
def test_wrong_values_are_named_by_field(make_tenant, values, field, message):
    out, errors = services.clean_settings(valid(**values), make_tenant())
    assert set(errors) == {field}
    assert message in errors[field]


def test_australian_workspace_takes_an_abn_and_no_gstin(make_tenant):
    tenant = make_tenant(country="AU", time_zone="Australia/Sydney", currency="AUD")
    out, errors = services.clean_settings(valid(abn=ATO_EXAMPLE_ABN), tenant)
    assert errors == {} and out["abn"] == "51824753556"
    _, errors = services.clean_settings(valid(gstin=KA_GSTIN, upi_vpa="a@b"), tenant)
    assert set(errors) == {"gstin", "upi_vpa"}


def test_page_saves_all_or_nothing_and_shows_errors_by_field(
    client, make_tenant, make_user, login, db_session
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/"
    # The billing defaults moved to the workflow page: saving this one leaves them alone.
    workspace = services.workspace_settings(db_session, tenant.id)
    workspace.auto_invoice, workspace.approval_required = "draft", True
    db_session.commit()
    page = client.get(url)
    assert page.status_code == 200
    form = {
        "csrf_token": csrf_token_from(page.text),
        "legal_name": "Acme Engineering LLP",
        "gstin": KA_GSTIN,
        "upi_vpa": "acme@okhdfcbank",
        "brand_colour": "#AA3300",
        "send_window_start": "08:30",
        "send_window_end": "20:00",
    }

    refused = client.post(url, data={**form, "upi_vpa": "acme"})
    assert refused.status_code == 422
    assert 'id="upi_vpa-error"' in refused.text and "name@bank" in refused.text
    assert 'value="Acme Engineering LLP"' in refused.text  # what was typed is kept
    db_session.expire_all()
    assert services.workspace_settings(db_session, tenant.id).legal_name is None

    saved = client.post(url, data=form)
    assert saved.status_code == 303
    db_session.expire_all()
    stored = services.workspace_settings(db_session, tenant.id)
    region = db_session.get(Tenant, tenant.id).region
    assert (stored.legal_name, stored.gstin, region, stored.upi_vpa) == (
        "Acme Engineering LLP",
        KA_GSTIN,
        "Karnataka",
        "acme@okhdfcbank",
    )
    assert (stored.brand_colour, stored.auto_invoice, stored.approval_required) == (
        "#aa3300",
        "draft",
        True,
    )


@pytest.mark.parametrize("role", ["finance", "collector", "viewer"])
def test_only_admins_change_settings(client, make_tenant, make_user, add_member, login, role):
    tenant = make_tenant()
    member = make_user()
    add_member(tenant, member, role)
    login(client, member)
    assert client.get(f"/t/{tenant.slug}/settings/").status_code == 403
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    form = valid(csrf_token=token, legal_name="Mine now")
    changed = client.post(f"/t/{tenant.slug}/settings/", data=form)
    assert changed.status_code == 403


def test_logo_upload_replace_and_refusals(
    app, client, make_tenant, make_user, login, db_session, storage_root
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/settings/branding/").text)
    upload = f"/t/{tenant.slug}/settings/branding/logo"  # on Settings → Branding
    shown_at = f"/t/{tenant.slug}/settings/logo"

    def send(data: bytes, name: str):
        return client.post(
            upload,
            data={"csrf_token": token, "logo": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )

    refused = send(b"<svg onload='alert(1)'/>", "logo.svg")
    assert refused.status_code == 422 and "PNG or JPEG" in refused.text
    assert send(PNG, "logo.png").status_code == 303
    db_session.expire_all()
    first = services.workspace_settings(db_session, tenant.id).logo_key
    shown = client.get(shown_at)
    assert (shown.status_code, shown.mimetype, shown.data) == (200, "image/png", PNG)

    assert send(JPEG, "logo.jpg").status_code == 303
    db_session.expire_all()
    second = services.workspace_settings(db_session, tenant.id).logo_key
    assert second != first and second.endswith(".jpg")
    assert not (storage_root / first).exists()  # the old file went with the commit
    assert client.get(shown_at).data == JPEG


def test_a_logo_written_in_a_rolled_back_transaction_is_removed(
    app, make_tenant, db_session, storage_root
):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    with app.app_context():
        storage = get_storage(app)
    bound = session.get(Tenant, tenant.id)
    logo = services.save_logo(session, storage, bound, io.BytesIO(PNG))
    assert (storage_root / logo.key).exists()
    session.rollback()
    assert not (storage_root / logo.key).exists()


def test_a_new_workspace_gets_its_settings_row_with_the_defaults_on_first_use(
    make_tenant, db_session
):
    tenant, other = make_tenant(), make_tenant(legal_name="Other Traders LLP")
    assert db_session.get(WorkspaceSettings, tenant.id) is None  # create_tenant makes none
    workspace = services.workspace_settings(db_session, tenant.id)
    assert workspace.tenant_id == tenant.id and workspace.legal_name is None
    assert (workspace.brand_colour, workspace.auto_invoice, workspace.approval_required) == (
        "#1f5f8b",
        "off",
        False,
    )
    assert (workspace.send_window_start, workspace.send_window_end) == (time(9), time(19))
    assert workspace.send_on_business_days_only is True
    assert services.workspace_settings(db_session, tenant.id) is workspace  # loaded once
    assert services.workspace_settings(db_session, other.id).legal_name == "Other Traders LLP"
