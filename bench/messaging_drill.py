"""Fault drill (issue 6): 1,000 WhatsApp messages while workers are SIGKILLed 10 times and
Redis is restarted once; every message must be delivered, none lost, and the stand-in counts
what reached it more than once."""

from __future__ import annotations

import random
import signal
import tempfile
import threading
import time
from pathlib import Path

from app import create_app
from app.devserver import EmbeddedRedis
from app.extensions import db
from bench.common import BenchEnvironment, Stopwatch, print_figure, print_header
from bench.messaging import (
    PYTHON,
    THROUGHPUT_WORKERS,
    Check,
    _log_dir,
    outbox_counts,
    print_line,
    process_env,
    queue_whatsapp,
    set_up_sender,
    spawn,
    standin,
    standin_stats,
    stop,
)

MEASURES = """
1,000 WhatsApp template messages (queue_message, one transaction, handed to RQ on commit) to
the stand-in (no rate limit, no callbacks), delivered by 2 real worker processes on a Redis
server of the drill's own. MESSAGE_LEASE_SECONDS=5 and MESSAGE_REDELIVERY_SECONDS=3 in every
process; the sweeper (jobs.tasks.sweep_outbox) runs every second from the bench. A supervisor
SIGKILLs a random worker 10 times (about one a second, and starts a new one each time) and
restarts Redis once (stopped, started again on the same port, empty: the queued jobs are gone,
the workers must reconnect, the sweeper must hand the messages out again).
  delivered   unique idempotency keys the stand-in accepted, and outbox rows 'sent'
  duplicates  requests repeating a key the stand-in had accepted already (a worker killed
              after the POST and before recording it): the stand-in answers them with the
              first message id, as a provider honouring an idempotency key would; reported
  lost        messages neither sent nor still on their way when the drill ends
"""
MESSAGES = 1_000
KILLS = 10
KILL_INTERVAL = 1.0
LEASE_SECONDS, REDELIVERY_SECONDS = 5, 3
TIMEOUT = 240


def run(environment: BenchEnvironment) -> list:
    print_header(
        f"messaging_drill: {MESSAGES:,} messages, {KILLS} SIGKILLs, a Redis restart", MEASURES
    )
    with tempfile.TemporaryDirectory(prefix="bench-drill-redis-") as folder:
        redis_server = EmbeddedRedis(Path(folder))
        redis_server.start()
        try:
            return _drill(environment, redis_server)
        finally:
            redis_server.stop()


def _drill(environment: BenchEnvironment, redis_server: EmbeddedRedis) -> list:
    settings = {
        "REDIS_URL": redis_server.url,
        "MESSAGE_LEASE_SECONDS": LEASE_SECONDS,
        "MESSAGE_REDELIVERY_SECONDS": REDELIVERY_SECONDS,
    }
    app = create_app({**environment.config, **settings})
    rng = random.Random(6)
    events: list[str] = []
    with standin("--status-script", "none") as url, _log_dir("drill") as logs:
        sender = set_up_sender(app, MESSAGES)
        env = process_env(
            environment,
            REDIS_URL=redis_server.url,
            WHATSAPP_API_BASE=url,
            TENANT_MESSAGES_PER_SECOND="1000",
            MESSAGE_LEASE_SECONDS=str(LEASE_SECONDS),
            MESSAGE_REDELIVERY_SECONDS=str(REDELIVERY_SECONDS),
        )
        started_workers = 0

        def new_worker():
            nonlocal started_workers
            started_workers += 1
            return spawn(
                [PYTHON, "-m", "jobs.worker", "messages"],
                env,
                logs / f"worker-{started_workers}.log",
            )

        pool = [new_worker() for _ in range(THROUGHPUT_WORKERS)]
        done = threading.Event()
        sweeps = {"runs": 0, "handed_out": 0, "errors": 0}

        def sweeper() -> None:
            import logging

            from jobs.tasks import sweep_outbox

            logging.getLogger("jobs").setLevel(logging.WARNING)  # a line per sweep otherwise
            while not done.wait(1.0):
                try:
                    with app.app_context():
                        sweeps["handed_out"] += sweep_outbox()
                    sweeps["runs"] += 1
                except Exception:  # Redis down, or the database busy: try again in a second
                    sweeps["errors"] += 1

        sweeping = threading.Thread(target=sweeper, daemon=True)
        time.sleep(2)  # the workers load the app
        with Stopwatch() as watch:
            with app.app_context():
                session, _ = queue_whatsapp(app, sender, "drill", MESSAGES)
                session.commit()
                db.session.remove()
            sweeping.start()
            kills, redis_restarted, deaths = 0, False, 0
            next_kill = time.perf_counter() + KILL_INTERVAL
            deadline = time.perf_counter() + TIMEOUT
            while outbox_counts(app, "drill").get("sent", 0) < MESSAGES:
                now = time.perf_counter()
                if now > deadline:
                    break
                for index, process in enumerate(pool):  # a worker that died on its own
                    if process.poll() is not None:
                        deaths += 1
                        events.append(f"{now - watch.started:5.1f}s worker exited by itself")
                        pool[index] = new_worker()
                if kills < KILLS and now >= next_kill:
                    index = rng.randrange(len(pool))
                    pool[index].send_signal(signal.SIGKILL)
                    pool[index].wait()
                    pool[index] = new_worker()
                    kills += 1
                    events.append(f"{now - watch.started:5.1f}s SIGKILL worker, restarted")
                    next_kill = now + KILL_INTERVAL * rng.uniform(0.5, 1.5)
                    if kills == KILLS // 2 and not redis_restarted:
                        redis_server.stop()
                        time.sleep(1.0)
                        redis_server.start()
                        redis_restarted = True
                        events.append(
                            f"{time.perf_counter() - watch.started:5.1f}s Redis "
                            "stopped for 1 s and started again (empty)"
                        )
                time.sleep(0.1)
        done.set()
        sweeping.join(5)
        for process in pool:
            stop(process)
        stats = standin_stats(url)
        counts = outbox_counts(app, "drill")
    with app.app_context():
        db.engine.dispose()

    sent = counts.get("sent", 0)
    lost = MESSAGES - sent
    print_figure("events", "\n" + "\n".join(f"{'':34}{line}" for line in events))
    print_figure("wall time", f"{watch.seconds:.1f} s (queueing to all sent)")
    print_figure(
        "kills / Redis restarts",
        f"{kills} SIGKILLs, {int(redis_restarted)} Redis restart, {deaths} other worker exits",
    )
    print_figure(
        "sweeper",
        f"{sweeps['runs']} runs, {sweeps['handed_out']} messages handed out "
        f"again, {sweeps['errors']} runs failed (Redis down)",
    )
    print_figure("outbox", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print_figure(
        "stand-in",
        f"{stats['unique_keys']} unique keys, {stats['accepted']} accepted, "
        f"{stats['duplicate_keys']} duplicate-key requests absorbed, "
        f"{stats['requests']} requests",
    )
    print_figure(
        "delivered / duplicates / lost",
        f"{stats['unique_keys']} / {stats['accepted'] - stats['unique_keys']} "
        f"(+{stats['duplicate_keys']} absorbed by the key) / {lost}",
    )
    passed = (
        stats["unique_keys"] == MESSAGES
        and stats["accepted"] == MESSAGES
        and sent == MESSAGES
        and kills == KILLS
        and redis_restarted
    )
    verdict = Check(
        "messaging_drill: 1,000 delivered once through 10 kills and a Redis restart",
        passed,
        f"delivered {stats['unique_keys']}, lost {lost}, duplicates "
        f"{stats['accepted'] - stats['unique_keys']} ({stats['duplicate_keys']} repeated "
        f"requests absorbed by the idempotency key), {watch.seconds:.0f} s",
    )
    print_line(verdict)
    return [verdict]
