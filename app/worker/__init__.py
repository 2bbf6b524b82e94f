"""Background workers: claim a queued (or lease-expired) run atomically, train it under a lease.

The claim is one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING id``: on
PostgreSQL concurrent workers skip each other's locked rows, on SQLite writes are serialised. Every
step renews the lease and reads the cancel flag, so cancel takes effect within one step; a
heartbeat thread keeps the lease alive through long steps and start-up. A worker that dies stops
heartbeating; once its lease expires any worker claims the run again and resumes from the last
checkpoint. Many workers on many machines sharing one PostgreSQL is the scale-out path.

Every write a running job makes is idempotent (upserts, conditional updates) and retried through
transient database errors (a PostgreSQL restart, SQLite's ``database is locked``) for
``database_retry_seconds``: training pauses while the database is away and carries on after; a
database outage never marks a run failed.
"""
