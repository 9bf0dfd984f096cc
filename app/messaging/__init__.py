"""Outbound messages: written to the outbox with the business change, delivered by a worker."""
