"""The tenant's people: members, roles, invitations."""
