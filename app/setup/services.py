"""The first-run setup: five short steps after sign-up (who the business is, its brand, how
it is paid, who its e-mail comes from, its first clients). Each step saves through the
settings rules (`app.settings.services`), so a step refuses exactly what the settings page
refuses, with the same words beside the same fields. A step can be skipped; the setup
resumes at the first step neither done nor skipped, and the dashboard names what is left."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import BinaryIO

from sqlalchemy import BigInteger, bindparam, exists, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.storage import Storage
from app.settings import services as settings
from app.settings.models import WorkspaceSettings
from tenants.models import Tenant

DONE, SKIPPED = "done", "skipped"


@dataclass(frozen=True)
class Step:
    name: str
    title: str  # "{clients}": the workspace's word (app.core.terminology)
    fields: tuple[str, ...]  # the settings this step fills


STEPS = (
    Step(
        "identity",
        "Your business",
        ("legal_name", "address", "region", "gstin", "pan", "abn", "tax_number"),
    ),
    Step("brand", "Logo and colour", ("brand_colour",)),
    Step("payment", "Getting paid", ("upi_vpa", "payment_instructions")),
    Step("email", "E-mail to your {clients}", ("sender_name", "reply_to")),
    # Clients are added on the clients pages; the step is done once there is one.
    Step("clients", "Your first {clients}", ()),
)
BY_NAME = {step.name: step for step in STEPS}


@dataclass(frozen=True)
class Progress:
    states: dict[str, str | None]  # by step name: DONE, SKIPPED or None (open)

    @property
    def left(self) -> list[Step]:
        """The steps not done, skipped ones included: skipping puts a step off, it does not
        set anything up."""
        return [step for step in STEPS if self.states[step.name] != DONE]

    def next_open(self) -> Step | None:
        """Where the setup goes on: the first step neither done nor skipped."""
        return next((step for step in STEPS if self.states[step.name] is None), None)

    def resume_at(self) -> Step | None:
        """Where coming back to the setup leads: the next open step, else the first skipped
        one (someone who skipped everything and returns wants to do some of it now)."""
        return self.next_open() or next(iter(self.left), None)


# What shows a step's settings were given already (under Settings, before this setup existed,
# or by the demo seeding): such a step is done whatever was recorded. A brand colour is always
# there (it has a default), so the brand step counts as given by its logo.
GIVEN = {
    "identity": ("legal_name", "address", "gstin", "pan", "abn", "tax_number"),
    "brand": ("logo_key",),
    "payment": ("upi_vpa", "payment_instructions"),
    "email": ("sender_name", "reply_to"),
}


@cache
def _progress_query():
    """The recorded steps and the settings that show a step given: those columns, not the
    settings row (the dashboard asks on every view by an admin). Built once."""
    given = dict.fromkeys(field for fields in GIVEN.values() for field in fields)
    return select(
        WorkspaceSettings.setup_progress, *(getattr(WorkspaceSettings, field) for field in given)
    ).where(WorkspaceSettings.tenant_id == bindparam("tenant_id", type_=BigInteger))


def progress(
    session: Session,
    tenant_id: int,
    has_clients: bool | None = None,
    workspace: WorkspaceSettings | None = None,
) -> Progress:
    """Each step's state; `has_clients` and the settings row `workspace` when the caller has
    them already (the dashboard counts clients and reads the row for its widgets anyway). A
    workspace without its settings row yet has recorded and given nothing."""
    if workspace is None:
        workspace = session.execute(_progress_query(), {"tenant_id": tenant_id}).one_or_none()
    recorded = workspace.setup_progress if workspace else {}
    states = {step.name: recorded.get(step.name) for step in STEPS}
    for name, fields in GIVEN.items():
        if workspace and any(getattr(workspace, field) for field in fields):
            states[name] = DONE
    if states["clients"] != DONE:
        if has_clients is None:
            has_clients = session.scalar(select(exists().where(Client.id.is_not(None))))
        if has_clients:
            states["clients"] = DONE
    return Progress(states)


def _record(session: Session, tenant_id: int, step: Step, state: str) -> None:
    workspace = settings.workspace_settings(session, tenant_id)
    # A new dict, not an edit in place: the JSON column sees only a new value as a change.
    workspace.setup_progress = {**workspace.setup_progress, step.name: state}
    session.flush()


def save_step(
    session: Session,
    storage: Storage,
    tenant: Tenant,
    step: Step,
    form: Mapping,
    logo: BinaryIO | None = None,
) -> dict[str, str]:
    """Save the step's fields (and, on the brand step, a logo) over the workspace's current
    settings and mark the step done; on any error change nothing and return the errors by
    field (the request rolls back, a stored logo file with it)."""
    workspace = settings.workspace_settings(session, tenant.id)
    values = settings.form_values(tenant, workspace)
    values.update({name: form.get(name, "") for name in step.fields})
    errors: dict[str, str] = {}
    if logo is not None:
        try:
            settings.save_logo(session, storage, tenant, logo)
        except settings.SettingsError as error:
            errors["logo"] = str(error)
    errors.update(settings.save_settings(session, tenant, values))
    if not errors:
        _record(session, tenant.id, step, DONE)
    return errors


def skip_step(session: Session, tenant_id: int, step: Step) -> None:
    """Put the step off; one already done stays done."""
    if progress(session, tenant_id).states[step.name] != DONE:
        _record(session, tenant_id, step, SKIPPED)
