"""Roles mapped to named permissions. Views check permissions, never role names."""

from __future__ import annotations

ROLES = ("owner", "admin", "finance", "collector", "viewer")

ROLE_LABELS = {
    "owner": "Owner",
    "admin": "Admin",
    "finance": "Finance",
    "collector": "Collector",
    "viewer": "Viewer",
}

_VIEW = {"dashboard.view", "clients.view", "invoices.view", "notices.view", "messages.view"}
# Finance people collect too (in a small business the owner often does) and supervise the
# collectors: any collector's queue, and the field visits that need verifying. Letting a
# legal-stage notice (a demand letter, the MSEFC pack) go out is theirs too, never a
# collector's: it commits the business to legal action.
_FINANCE = _VIEW | {
    "clients.edit",
    "invoices.edit",
    "payments.record",
    "notices.manage",
    "notices.approve_legal",
    "messages.send",
    "campaigns.manage",
    "templates.manage",
    "collections.work",
    "collections.supervise",
}
_ADMIN = _FINANCE | {
    "users.manage",
    "audit.view",
    "integrations.manage",
    "settings.manage",
    "ops.view",
}

PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_VIEW),
    "collector": frozenset(_VIEW | {"notices.manage", "collections.work", "messages.send"}),
    "finance": frozenset(_FINANCE),
    "admin": frozenset(_ADMIN),
    "owner": frozenset(_ADMIN | {"tenant.own"}),
}

ALL_PERMISSIONS = frozenset().union(*PERMISSIONS.values())


def role_grants(role: str, permission: str) -> bool:
    if permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in PERMISSIONS.get(role, frozenset())


def roles_assignable_by(role: str) -> tuple[str, ...]:
    """Admins manage everyone but owners; only an owner makes another owner."""
    if role == "owner":
        return ROLES
    if role == "admin":
        return tuple(r for r in ROLES if r != "owner")
    return ()
