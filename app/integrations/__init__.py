"""Integration settings: the connectors a tenant connects (messaging channels first; accounting,
payments and lead sources later), their encrypted credentials and their health."""
