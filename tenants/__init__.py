"""Tenancy core: tenants, users and memberships (shared schema), per-request and per-job schema
binding, schema provisioning and the per-schema migration runner."""
