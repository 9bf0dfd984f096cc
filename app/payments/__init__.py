"""Payments received from clients, allocated across their invoices (cash and TDS)."""
