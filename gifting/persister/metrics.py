"""Prometheus metrics of the persister (module level, default registry).

Lag is measured from the outbox itself: ``entries`` counts the entries the
group has not acknowledged (pending plus never delivered), ``seconds`` is the
age of the oldest of them, read from its stream id (milliseconds since the
epoch when Redis appended it).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SECONDS",
    "BATCH_SIZE",
    "DEAD_LETTERS",
    "DUPLICATES",
    "EVENTS_PERSISTED",
    "LAG_ENTRIES",
    "LAG_SECONDS",
    "OWNED_SHARDS",
    "RECLAIMED",
    "RETIRED",
    "RETIRE_FAILURES",
    "RETRIES",
    "TRIMMED",
]

LAG_ENTRIES = Gauge(
    "gifting_persister_lag_entries",
    "Outbox entries not yet acknowledged by the persister group (pending + undelivered).",
)
LAG_SECONDS = Gauge(
    "gifting_persister_lag_seconds",
    "Age of the oldest outbox entry not yet acknowledged by the persister group.",
)
OWNED_SHARDS = Gauge(
    "gifting_persister_owned_shards",
    "Outbox shards this persister process consumes now (leases held; a cluster's persisters).",
)
BATCH_SIZE = Histogram(
    "gifting_persister_batch_size",
    "Outbox entries per persisted batch.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "gifting_persister_batch_seconds",
    "Time to handle one batch: repairs, the PostgreSQL transaction and the XACK.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PERSISTED = Counter(
    "gifting_persister_events_persisted",
    "Ledger events newly written to PostgreSQL, by type.",
    ["type"],
)
DUPLICATES = Counter(
    "gifting_persister_duplicates_skipped",
    "Outbox entries whose event id PostgreSQL already had (replays after a crash).",
)
RETRIES = Counter(
    "gifting_persister_retries",
    "Batches abandoned without XACK and retried after a back-off, by the step that failed "
    "(read, repair, postgres, ack).",
    ["reason"],
)
DEAD_LETTERS = Counter(
    "gifting_persister_dead_letters",
    "Outbox entries sent to the dead-letter stream (malformed, unknown, refused by PostgreSQL).",
)
RECLAIMED = Counter(
    "gifting_persister_reclaimed",
    "Pending entries claimed from idle consumers (XAUTOCLAIM).",
)
TRIMMED = Counter(
    "gifting_persister_trimmed",
    "Acknowledged outbox entries trimmed from the outbox streams.",
)
RETIRED = Counter(
    "gifting_persister_retired",
    "Redis idempotency records (spend results, credited and emitted markers) shortened to "
    "the recent window once PostgreSQL held their spend.",
)
RETIRE_FAILURES = Counter(
    "gifting_persister_retire_failures",
    "Acknowledged batches whose Redis records could not be retired (they keep no expiry).",
)
