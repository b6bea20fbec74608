"""Prometheus metrics of the hub (exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("gifting_connections", "Open WebSocket connections", ["kind"])
SPENDS = Counter("gifting_spends_total", "Spends by result", ["kind", "result"])
ACK_LATENCY = Histogram(
    "gifting_ack_latency_seconds",
    "Time from a spend frame read to its ack written",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
QUEUE_DEPTH = Histogram(
    "gifting_fanout_queue_depth",
    "Frames waiting in a connection's send queue when its writer wakes",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CONNECTIONS_REFUSED = Counter(
    "gifting_connections_refused_total",
    "Connections refused (1013) for a connection cap: per user, overlay key or address",
    ["limit"],
)
CONNECTION_LIMIT = Gauge(
    "gifting_connection_limit",
    "The connection caps of this hub process (GIFTING_MAX_CONNECTIONS_PER_*)",
    ["limit"],
)
RATE_LIMIT = Gauge(
    "gifting_rate_limit",
    "The frame rate limit: tokens a second (rate) and the burst (GIFTING_RATE_*)",
    ["param"],
)
CLOSES = Counter(
    "gifting_server_closes_total",
    "Connections the hub closed, by close code (1008: refused or flooding, 1013: too slow or "
    "too many connections, 1009: frame too big, ...)",
    ["code"],
)
SLOW_CLOSES = Counter("gifting_slow_consumer_closes_total", "Connections closed 1013 for lagging")
CATCH_UPS = Counter(
    "gifting_overlay_catch_ups_total",
    "Live overlays that fell behind (lag) or lost a gap the room could not read (gap) and "
    "caught up from the room's history",
    ["reason"],
)
ROOM_EVENTS = Counter("gifting_room_events_total", "Room events received from the broker")
DELIVERIES = Counter("gifting_deliveries_total", "Room events queued to connections", ["kind"])
BATCH_SIZE = Histogram(
    "gifting_spend_batch_size",
    "Spends sent to Redis in one pipeline",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
KEPT_LOOKUP_FAILURES = Counter(
    "gifting_spend_kept_lookup_failures_total",
    "Debit batches that could not look their ids up in PostgreSQL (Redis alone answered)",
)
BLOCKED_COMMENTS = Counter(
    "gifting_blocked_comments_total",
    "Free comments refused because a moderator blocked their sender (spends refused so are "
    'gifting_spends_total{result="blocked"})',
)
PRESENCE_VIEWERS = Gauge(
    "gifting_presence_viewers",
    "Viewer connections this hub reported on its last presence beat (all streams)",
)
PRESENCE_FAILURES = Counter(
    "gifting_presence_failures_total",
    "Presence beats that could not write to Redis (the hub's viewers expire from the listing "
    "after three missed beats)",
)
