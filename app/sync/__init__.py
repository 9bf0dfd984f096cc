"""The sync engine: keeps Duebook and a tenant's books (Xero, QuickBooks Online, Zoho Books) in
step through their accounting connectors. See services.py."""
