"""Scheduled reports: a report of the workspace (aging, DSO, collections performance,
promises, cash received) e-mailed as XLSX, CSV or PDF daily, weekly or monthly to chosen
people, through the outbox."""
