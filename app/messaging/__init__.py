"""Outbound messages, the read and deliver side of the outbox (`app.outbox`): delivery through
the connectors of `app.integrations.connectors`, provider webhooks (statuses, inbound WhatsApp
messages, bounces), unsubscribe links, rate limits and the Messages pages."""
