"""Message templates (per channel and language, rendered in a sandbox) and campaigns."""
