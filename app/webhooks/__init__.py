"""Outbound webhooks: admins subscribe their URLs to domain event types; each delivery is signed
per the Standard Webhooks specification, retried with backoff for about a day, ordered per
resource, logged, and replayable."""
