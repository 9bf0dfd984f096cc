"""The worker survives a Redis restart: it waits until Redis answers again and goes on taking
jobs, instead of exiting (which left the queues without a worker until someone noticed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from app.devserver import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, to stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def test_the_worker_keeps_working_after_redis_restarts(app_config, own_redis, tmp_path):
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": own_redis.url,
        "SECRET_KEY": app_config["SECRET_KEY"],
        "DUEBOOK_ENV": "test",
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobs.worker", "default"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def logged(text: str) -> bool:
            return text in log_path.read_text(errors="replace")

        queue = Queue("default", connection=Redis.from_url(own_redis.url))
        queue.enqueue("time.sleep", 3)
        assert wait_until(lambda: logged("default: time.sleep(3)")), log_path.read_text()

        own_redis.stop()  # in the middle of that job
        assert wait_until(lambda: worker.poll() is not None or logged("Redis does not answer"))
        assert worker.poll() is None, log_path.read_text()
        restarted = EmbeddedRedis(own_redis.datadir, port=own_redis.port).start()
        own_redis.process = restarted.process  # stopped at the end by the fixture

        made = tmp_path / "made-after-the-restart"
        Queue("default", connection=Redis.from_url(own_redis.url)).enqueue("os.mkdir", str(made))
        assert wait_until(made.exists), log_path.read_text()
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
