"""The persister: settled outbox events into the PostgreSQL double-entry ledger, exactly once.

Modules, one job each:

* ``migrations/*.sql`` and :mod:`.schema` — the versioned schema, ``apply_migrations``;
* :mod:`.postings` — pure: an outbox entry to a ledger event and balanced postings;
* :mod:`.writer` — one PostgreSQL transaction per batch, idempotent by event id;
* :mod:`.consumer` — ``OutboxConsumer``, the Redis Streams consumer group;
* :mod:`.progress` — lag, trim points, ``wait_caught_up``;
* :mod:`.reads` — wallet history, creator earnings, cash-outs from PostgreSQL;
* :mod:`.audit` — ``run_audit``: conservation rules and Redis against the ledger;
* :mod:`.metrics` — Prometheus metrics;
* :mod:`.service` — the CLI commands and the app's lifespan.

Nothing here imports the hub, the HTTP API or the app (import-linter contract).
"""
