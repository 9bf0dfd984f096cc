"""Invoicing: the money core (Decimal money helpers, GST, amounts in words, invoice numbers)."""
