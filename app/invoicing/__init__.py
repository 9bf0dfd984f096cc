"""Invoicing: invoices and credit notes (GST, amounts in words, numbers, PDFs) and what each
invoice still owes (its balance)."""
