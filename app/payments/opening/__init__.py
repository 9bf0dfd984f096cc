"""Opening balances: the open invoices a business brings from its old books (see services)."""
