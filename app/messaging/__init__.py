"""Outbound messages: written to the outbox with the business change, delivered by a worker
through the connectors of `app.integrations.connectors`, tracked through provider webhooks."""
