"""Logs without secrets: the token part of invitation, password-reset, sign-up and
unsubscribe links (and of secret webhook addresses) is written as "[hidden]" wherever it
appears in a log line. Gunicorn's access log (the request line, path, query, referrer,
headers) through RedactingLogger, which gunicorn.conf.py names; the app's own log (Flask
logs "Exception on /invitations/<token>" for a failed request) through HideSecretLinks."""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from app.outbox.secret_links import redact_secret_paths


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        return {
            name: redact_secret_paths(value) if isinstance(value, str) else value
            for name, value in super().atoms(resp, req, environ, request_time).items()
        }


class HideSecretLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = redact_secret_paths(message)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True
