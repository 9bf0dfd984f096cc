# Read by gunicorn from the directory it starts in (`make run`, and `gunicorn wsgi:app` in
# production): the access log hides the secret part of one-time links (app/access_log.py).
logger_class = "app.access_log.RedactingLogger"
