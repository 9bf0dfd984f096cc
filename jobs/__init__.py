"""RQ: queues, the worker and scheduler entry points, and the job functions (thin: each opens
an app context, binds a tenant when it has one, and calls an area's service)."""


def load_jobs() -> None:
    """Import every job module, so that each job is registered under its name: the web
    process hands work over by name (`app.core.handover`) and never calls a job itself."""
    from jobs import (  # noqa: F401
        aging,
        banking,
        calendars,
        campaigns,
        collections,
        events,
        gateways,
        integrations,
        notices,
        notifications,
        reports,
        rules,
        sync,
        tasks,
        webhooks,
        whatsapp,
    )
