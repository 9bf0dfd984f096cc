# Read by gunicorn from the directory it starts in (`make run`, and `gunicorn wsgi:app` in
# production): the access log hides the secret part of one-time links (app/access_log.py).
# Every setting below can be overridden without editing this file: WEB_CONCURRENCY (worker
# processes, gunicorn's own variable), WEB_THREADS, WEB_KEEPALIVE, WEB_MAX_REQUESTS, or any
# gunicorn flag in GUNICORN_CMD_ARGS (and the command line beats both).
import os

logger_class = "app.access_log.RedactingLogger"

# The serving model, measured with `python -m bench load` (bench/README.md, "## load"): closed-
# loop users against each candidate, all up at once and measured step by step in turn.
#
# - Without this file saying so, gunicorn runs ONE sync worker: one request at a time for the
#   whole server, whatever the cores (from 10 users on, the bare tenant route at 80-100 req/s
#   where two processes served 130-250).
# - gthread with keep-alive: a process accepts connections while its threads are busy, and a
#   kept-alive connection stays with the process that accepted it, so users pile up unevenly
#   (713/384 requests at 5 users, 67/16 at 10, 253/234/111/68 with 4 processes) and those on
#   the busier process wait longer. SO_REUSEPORT (reuse_port) does not help: gunicorn's
#   workers share the master's one socket, so the kernel has nothing to spread.
# - Keep-alive off: each request is accepted anew by whichever process is free, and the split
#   stays even (402/391, 42/41, 310/248). The cost is a new connection per request: none seen
#   on the page mix (PostgreSQL dominates it), some on the bare route at saturation (204
#   against 274 req/s, on a machine busy with other work); re-measure as pages get cheaper.
#   Browsers keep their keep-alive with the TLS proxy in front; when gunicorn terminates TLS
#   itself, set WEB_KEEPALIVE=2 to spare a handshake per request.
# - gthread rather than sync workers: a sync worker is held by a slow client for the whole
#   upload or download, which only a buffering proxy prevents.
# - One process per core, 4 threads each: a page spends most of its time waiting on
#   PostgreSQL, when the process's other threads can run; more processes each build their
#   statement and template caches again (the first views of each page in a new process cost
#   several times a warm one).
# - No max_requests: recycling a worker every 1,000 requests (jitter 100) threw those caches
#   away every few seconds under load and cost throughput; worker memory stayed flat over a
#   whole run (see bench/README.md), so there is nothing to recycle for.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", len(os.sched_getaffinity(0))))
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "0"))
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
