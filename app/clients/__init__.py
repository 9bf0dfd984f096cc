"""Client profiles: clients and prospects, contacts, sites, documents, import and export."""
