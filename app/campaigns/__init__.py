"""Campaigns: one message template sent to many clients' contacts."""
