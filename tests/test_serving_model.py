"""The serving model production gets from gunicorn.conf.py (measured by `python -m bench
load`, bench/README.md "## load"): read the way gunicorn itself reads it, from the clone's
root, with the environment's overrides."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from unittest import mock

from gunicorn.app.wsgiapp import WSGIApplication

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_KEEPALIVE", "WEB_MAX_REQUESTS")


def production_settings(**environment: str):
    """gunicorn's settings for `gunicorn wsgi:app` started in the clone's root."""
    clean = {key: value for key, value in os.environ.items() if key not in OVERRIDES}
    clean.pop("GUNICORN_CMD_ARGS", None)
    argv = ["gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
    with (
        mock.patch.dict(os.environ, {**clean, **environment}, clear=True),
        mock.patch.object(sys, "argv", argv),
    ):
        return WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg


def test_the_server_serves_requests_side_by_side_on_every_core():
    settings = production_settings()
    assert settings.worker_class_str == "gthread"
    assert settings.workers == len(os.sched_getaffinity(0))
    assert settings.threads == 4


def test_each_request_goes_to_whichever_worker_process_is_free():
    # A kept-alive connection would stay with the process that accepted it.
    assert production_settings().keepalive == 0


def test_workers_are_not_recycled_by_default():
    assert production_settings().max_requests == 0


def test_the_serving_model_is_changed_through_the_environment():
    settings = production_settings(
        WEB_CONCURRENCY="3", WEB_THREADS="2", WEB_KEEPALIVE="5", WEB_MAX_REQUESTS="5000"
    )
    assert (settings.workers, settings.threads, settings.keepalive) == (3, 2, 5)
    assert (settings.max_requests, settings.max_requests_jitter) == (5000, 500)

    settings = production_settings(GUNICORN_CMD_ARGS="--workers 6 --keep-alive 2")
    assert (settings.workers, settings.keepalive) == (6, 2)


def test_the_access_log_still_hides_one_time_links():
    assert production_settings().logger_class.__name__ == "RedactingLogger"
