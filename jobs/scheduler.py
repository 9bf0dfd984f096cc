"""`python -m jobs.scheduler`: RQ's cron scheduler with Duebook's periodic jobs, declared once
here. Periodic jobs that concern every tenant fan out one job per tenant."""

from __future__ import annotations

from rq.cron import CronScheduler

from app import create_app
from app.core.handover import job_spec
from jobs import load_jobs
from jobs.aging import roll_aging_all
from jobs.banking import pull_bank_statements_all
from jobs.calendars import push_calendars_all
from jobs.campaigns import sweep_campaign_launches_all
from jobs.collections import run_collections_all
from jobs.events import deliver_events_all
from jobs.gateways import reconcile_gateways_all, sweep_gateway_events_all
from jobs.notices import sweep_notices_all
from jobs.notifications import send_notification_digests_all
from jobs.queues import redis_connection
from jobs.reports import sweep_report_schedules_all
from jobs.rules import run_rules_all
from jobs.sync import sweep_accounting_sync_all
from jobs.tasks import (
    announce_expiring_documents_all,
    mark_overdue_invoices_all,
    sweep_invoice_pdfs_all,
    sweep_outbox,
)
from jobs.webhooks import prune_webhook_logs_all, sweep_webhooks_all
from jobs.whatsapp import sync_whatsapp_templates_all

SCHEDULE = [
    # (job, seconds between runs or a cron string in the server's local time); each job runs on
    # the queue it declares
    (sweep_outbox, 30),
    # Daily at 01:30 (07:00 in India on a UTC server); running again the same day (a restart,
    # a second scheduler) sends nothing twice: each expiry date is announced once.
    (announce_expiring_documents_all, "30 1 * * *"),
    # Issued invoices whose PDF no worker rendered (Redis down at issue, a worker died).
    (sweep_invoice_pdfs_all, 600),
    # Scheduled campaigns whose messages no worker wrote (Redis down at launch, a worker died).
    (sweep_campaign_launches_all, 600),
    # Hourly, at :05: invoices past due turn overdue in each tenant just after its own midnight.
    (mark_overdue_invoices_all, "5 * * * *"),
    # Every 6 hours: WhatsApp templates' approval states, in case a status webhook was missed.
    (sync_whatsapp_templates_all, "20 */6 * * *"),
    # Hourly, at :10: each tenant's daily collection run once its own day reaches its run hour
    # (a tenant already run today is skipped; the run itself is exactly-once anyway).
    (run_collections_all, "10 * * * *"),
    # Approved notices whose send job never reached a worker, and notices following their
    # messages' statuses (delivery itself does not tell notices).
    (sweep_notices_all, 60),
    # Hourly, at :10: each tenant's aging rolled just after its own midnight, with the day's
    # snapshot for the trend (the pages also roll when they find the summary a day behind).
    (roll_aging_all, "10 * * * *"),
    # Hourly, at :15: each tenant's scheduled rules, once for its own new day (after the
    # overdue marking at :05, so "days overdue" conditions see today's statuses).
    (run_rules_all, "15 * * * *"),
    # Gateway webhooks stored but never applied (Redis down at receipt, a worker died).
    (sweep_gateway_events_all, 300),
    # Daily at 01:40 (07:10 in India on a UTC server): each workspace's gateways compared with
    # what their webhooks recorded, from the start of yesterday (GATEWAY_RECONCILIATION_DAYS);
    # what a lost webhook missed is applied. Running again adds nothing.
    (reconcile_gateways_all, "40 1 * * *"),
    # Every 30 minutes, at :07 and :37: bank statements from the SFTP folders workspaces set
    # up on their bank accounts (a file already pulled is not fetched again; a failure is
    # recorded on the account and the next run tries again).
    (pull_bank_statements_all, "7,37 * * * *"),
    # Every 2 minutes: accounting sync runs paused for a rate limit resume when the provider
    # said, runs whose worker died go on from their last page, and each connection's own
    # interval (hourly by default) starts its scheduled run.
    (sweep_accounting_sync_all, 120),
    # Every 5 minutes: domain events to their consumers (webhooks, the API's feeds) in every
    # workspace, for whatever a lost hand-over left behind; normally each commit hands over.
    (deliver_events_all, 300),
    # Every 15 minutes, at :03, :18, :33 and :48: members' connected calendars brought in step
    # (what a lost hand-over or a provider's outage left, and the days moving on).
    (push_calendars_all, "3,18,33,48 * * * *"),
    # Every minute: webhook deliveries whose retry fell due (the schedule starts at 5 s, so the
    # first retries wait for this sweep), and sends a lost hand-over or a dead worker left.
    (sweep_webhooks_all, 60),
    # Daily at 02:50: webhook delivery logs past their 30 days (app.webhooks.services.LOG_KEPT_FOR).
    (prune_webhook_logs_all, "50 2 * * *"),
    # Every hour at :05: the daily notification e-mails of the workspaces whose clock reads
    # 08:xx (DIGEST_HOUR), for the people who chose them.
    (send_notification_digests_all, "5 * * * *"),
    # Every 5 minutes: scheduled reports whose time came in each workspace's own clock (a
    # schedule's period is sent once however many sweeps see it due; a late sweep sends only
    # the latest period, never a burst of missed ones).
    (sweep_report_schedules_all, 300),
]


def main() -> None:
    app = create_app()
    load_jobs()
    with app.app_context():
        scheduler = CronScheduler(connection=redis_connection())
        for func, every in SCHEDULE:
            timing = {"cron": every} if isinstance(every, str) else {"interval": every}
            scheduler.register(func, job_spec(func.__name__).queue, **timing)
        scheduler.start()


if __name__ == "__main__":
    main()
