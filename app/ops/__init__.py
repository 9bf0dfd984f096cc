"""The ops page: queue depths, this workspace's outbox and webhook backlog, its failed jobs."""
