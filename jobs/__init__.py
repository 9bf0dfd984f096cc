"""RQ: queues, the worker and scheduler entry points, and the job functions (thin: each opens
an app context, binds a tenant when it has one, and calls an area's service)."""
