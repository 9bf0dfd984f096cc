"""The public JSON API (`/api/v1`): per-workspace keys, the resources, and the OpenAPI
document generated from the same declarations the routes are made from."""
