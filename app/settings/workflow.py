"""The workflow page's rules (Settings → Workflow, admins): how milestones become invoices on
new projects, whether every collection notice waits for a person's approval, which collection
policy chases clients that name none, and which dashboard widgets the workspace shows in what
order. Each form saves all of its fields or none, with the errors by field.

Two of these belong to areas above settings, which fill the ports declared here when the app
is made: the collection policies (`register_notice_ladders`, by collections) and the
dashboard's widgets (`register_dashboard_widgets`, by the dashboard)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.settings.models import WorkspaceSettings
from app.settings.services import AUTO_INVOICE_CHOICES, workspace_settings


@dataclass(frozen=True)
class NoticeLadders:
    """What the workflow page needs of the collection policies: the live ones as (id, name),
    the default's id, and a way to make another the default."""

    choices: Callable[[Session], list[tuple[int, str]]]
    default_id: Callable[[Session], int | None]
    make_default: Callable[[Session, int], None]


@dataclass(frozen=True)
class WidgetChoice:
    """A dashboard widget as the page offers it: its stored name, its title and what it shows."""

    name: str
    title: str
    about: str


_ladders: list[NoticeLadders] = []
_widgets: list[WidgetChoice] = []


def register_notice_ladders(ladders: NoticeLadders) -> None:
    _ladders[:] = [ladders]


def register_dashboard_widgets(widgets: Sequence[WidgetChoice]) -> None:
    _widgets[:] = list(widgets)


def notice_ladders() -> NoticeLadders | None:
    return _ladders[0] if _ladders else None


def widget_choices() -> list[WidgetChoice]:
    return list(_widgets)


# Workflow defaults ----------------------------------------------------------------------------


def form_values(session: Session, workspace: WorkspaceSettings) -> dict[str, str]:
    ladders = notice_ladders()
    default_id = ladders.default_id(session) if ladders else None
    return {
        "approval_required": "1" if workspace.approval_required else "",
        "auto_invoice": workspace.auto_invoice,
        "notices_need_approval": "1" if workspace.notices_need_approval else "",
        "default_policy": "" if default_id is None else str(default_id),
    }


def clean_workflow(
    values: Mapping, policy_ids: Sequence[int] | None
) -> tuple[dict, dict[str, str]]:
    """The defaults from a submitted form, and the errors by field. `policy_ids` are the live
    collection policies (None when collections is not part of the app: no choice to make)."""
    errors: dict[str, str] = {}
    auto_invoice = values.get("auto_invoice") or "off"
    if auto_invoice not in dict(AUTO_INVOICE_CHOICES):
        errors["auto_invoice"] = "Choose one of the options."
    out: dict = {
        "approval_required": bool(values.get("approval_required")),
        "auto_invoice": auto_invoice,
        "notices_need_approval": bool(values.get("notices_need_approval")),
        "default_policy": None,
    }
    if policy_ids:
        raw = (values.get("default_policy") or "").strip()
        chosen = int(raw) if raw.isdigit() else None
        if chosen not in policy_ids:
            errors["default_policy"] = "Choose one of your collection policies."
        out["default_policy"] = chosen
    return out, errors


def save_workflow(session: Session, tenant_id: int, values: Mapping) -> dict[str, str]:
    """Apply the defaults when they are all valid; otherwise change nothing and return the
    errors by field."""
    ladders = notice_ladders()
    policy_ids = [policy_id for policy_id, _ in ladders.choices(session)] if ladders else None
    out, errors = clean_workflow(values, policy_ids)
    if errors:
        return errors
    workspace = workspace_settings(session, tenant_id)
    workspace.approval_required = out["approval_required"]
    workspace.auto_invoice = out["auto_invoice"]
    workspace.notices_need_approval = out["notices_need_approval"]
    session.flush()
    if ladders and out["default_policy"] != ladders.default_id(session):
        ladders.make_default(session, out["default_policy"])
    return {}


# Dashboard widgets -------------------------------------------------------------------------


def arranged_widgets(stored: list | None, known: Sequence[str]) -> list[tuple[str, bool]]:
    """Every known widget as (name, shown), in the workspace's order. What the stored choice
    names but the product no longer has is left out, and anything malformed in it is ignored;
    a widget it does not name yet (one added since) shows, after the others."""
    arranged: dict[str, bool] = {}
    for entry in stored if isinstance(stored, list) else ():
        if not isinstance(entry, dict):
            continue
        name = entry.get("widget")
        if name in known and name not in arranged:
            arranged[name] = entry.get("shown") is not False
    for name in known:
        arranged.setdefault(name, True)
    return list(arranged.items())


def shown_widgets(workspace: WorkspaceSettings, known: Sequence[str]) -> list[str]:
    """The names of the widgets the workspace's dashboard shows, in its order."""
    return [name for name, shown in arranged_widgets(workspace.dashboard_widgets, known) if shown]


def dashboard_form_values(workspace: WorkspaceSettings) -> dict[str, str]:
    known = [widget.name for widget in _widgets]
    values = {}
    for position, (name, shown) in enumerate(
        arranged_widgets(workspace.dashboard_widgets, known), start=1
    ):
        values[f"show.{name}"] = "1" if shown else ""
        values[f"position.{name}"] = str(position)
    return values


def clean_dashboard(values: Mapping, known: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """The widgets in the chosen order with whether each shows, and the errors by field
    (`position.<name>`): each position a whole number from 1 to the number of widgets, no two
    the same."""
    errors: dict[str, str] = {}
    positions: dict[str, int] = {}
    taken: dict[int, str] = {}
    for name in known:
        field = f"position.{name}"
        raw = (values.get(field) or "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= len(known):
            errors[field] = f"A whole number from 1 to {len(known)}."
            continue
        position = int(raw)
        if position in taken:
            errors[field] = f"{position} is already the place of another widget."
            continue
        taken[position] = name
        positions[name] = position
    ordered = sorted(positions, key=positions.__getitem__)
    return [{"widget": name, "shown": bool(values.get(f"show.{name}"))} for name in ordered], errors


def save_dashboard(session: Session, tenant_id: int, values: Mapping) -> dict[str, str]:
    """Keep the workspace's choice of dashboard widgets when it is valid; otherwise change
    nothing and return the errors by field."""
    chosen, errors = clean_dashboard(values, [widget.name for widget in _widgets])
    if errors:
        return errors
    workspace_settings(session, tenant_id).dashboard_widgets = chosen
    session.flush()
    return {}
