"""Message templates: per channel, purpose and language, rendered in a sandbox from plain data;
used by invoices, notices, campaigns and the sandbox stand-ins."""
