"""The tenant's audit log: who changed what, when, old value to new value."""
