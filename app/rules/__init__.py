"""Business rules: a trigger, a condition tree and ordered actions that a workspace's admins
build on a page (Settings → Rules), run set-based by the daily job and one record at a time by
the "rules" consumer of the domain events."""
