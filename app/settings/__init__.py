"""Workspace settings: the supplier on invoices, payment details, branding, billing defaults."""
