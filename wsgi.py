"""The web process's entry point (`gunicorn wsgi:app`, `flask --app wsgi`): the app, and the
names of the jobs it hands work to (each process's entry point loads them, since the job
modules use the app factory)."""

from app import create_app
from jobs import load_jobs

app = create_app()
load_jobs()
