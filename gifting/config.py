"""Every setting of the server, read from the environment in one place.

Nothing here connects to anything: :class:`Settings` is a plain value that the
composition root (:mod:`gifting.app`) turns into clients. Every setting has
bounds: a value outside them (a zero idempotency window that would let
retries debit twice, a negative queue) is refused at start-up with the
setting's name and its range, by :func:`load_settings`. Tests build their own
``Settings(...)`` with overrides instead of patching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration; each field maps to an environment variable."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    jwt_secret: str = Field(
        default="dev-jwt-secret-change-me-0123456789abcdef", alias="GIFTING_JWT_SECRET"
    )
    webhook_secret: str = Field(
        default="dev-webhook-secret-change-me-0123456789abcdef", alias="GIFTING_WEBHOOK_SECRET"
    )
    data_dir: Path = Field(default=Path("var"), alias="GIFTING_DATA_DIR")
    catalog_path: Path | None = Field(default=None, alias="GIFTING_CATALOG")
    dev: bool = Field(default=False, alias="GIFTING_DEV")
    # "json": one JSON object a line (request/connection and event ids), for log pipelines.
    log_format: Literal["text", "json"] = Field(default="text", alias="GIFTING_LOG_FORMAT")
    public_url: str | None = Field(
        default=None, alias="GIFTING_PUBLIC_URL", pattern=r"^https?://[^\s]+$", max_length=2048
    )

    # Embedded Redis durability: "always" means an acked spend survives a crash.
    appendfsync: Literal["always", "everysec"] = Field(
        default="always", alias="GIFTING_REDIS_APPENDFSYNC"
    )
    # Key prefix, so several deployments (or test runs) can share one Redis.
    key_prefix: str = Field(
        default="g", alias="GIFTING_KEY_PREFIX", pattern=r"^[A-Za-z0-9_.-]{1,32}$"
    )
    # Wallet shards (outboxes): part of the data layout, fixed at deploy time
    # (docs/operations.md: "Choosing the shard count"). 16 is every earlier layout.
    wallet_shards: int = Field(default=16, alias="GIFTING_WALLET_SHARDS", ge=1, le=16384)
    # Acknowledge a money call only once this many replicas have it (WAIT after
    # the batch; 0: no wait). Narrows what a failover can lose (docs/operations.md).
    redis_wait_replicas: int = Field(default=0, alias="GIFTING_REDIS_WAIT_REPLICAS", ge=0, le=16)
    redis_wait_ms: int = Field(default=100, alias="GIFTING_REDIS_WAIT_MS", ge=1, le=10_000)
    # How long the result of a refused spend, a cash-out request id or a
    # non-spend room event's marker is kept (retry window). At least a day: a
    # retry inside the window must replay, never debit again. Debited spends
    # are kept until PostgreSQL holds them (GIFTING_IDEMPOTENCY_RECENT_S).
    idempotency_ttl_s: int = Field(
        default=7 * 24 * 3600, alias="GIFTING_IDEMPOTENCY_TTL", ge=24 * 3600, le=365 * 24 * 3600
    )
    # How long any Redis call may wait for its answer (and a connection) before the
    # caller gets `unavailable`: a paused or partitioned Redis keeps its sockets open
    # and answers nothing. Well above a batch's round trip; the persister blocks on
    # its outboxes for at most half of it.
    redis_timeout_s: float = Field(default=5.0, alias="GIFTING_REDIS_TIMEOUT_S", ge=0.5, le=60)
    # How long a debited spend's Redis records (its result, the credited and emitted
    # markers) stay once PostgreSQL holds the spend; the hub then replays a retry
    # from PostgreSQL. Hubs settle, and the persister repairs, within half of it.
    idempotency_recent_s: int = Field(
        default=3600, alias="GIFTING_IDEMPOTENCY_RECENT_S", ge=60, le=24 * 3600
    )
    webhook_tolerance_s: int = Field(default=300, alias="GIFTING_WEBHOOK_TOLERANCE", ge=30, le=3600)

    # Hub
    combo_window_ms: int = Field(default=3000, alias="GIFTING_COMBO_WINDOW_MS", ge=100, le=60_000)
    history_max_events: int = Field(
        default=10_000, alias="GIFTING_HISTORY_MAX_EVENTS", ge=100, le=1_000_000
    )
    history_max_age_s: int = Field(
        default=600, alias="GIFTING_HISTORY_MAX_AGE", ge=10, le=7 * 24 * 3600
    )
    max_frame_bytes: int = Field(
        default=16 * 1024, alias="GIFTING_MAX_FRAME_BYTES", ge=512, le=1024 * 1024
    )
    # Viewers get a room's events joined into one batch frame at most this often
    # (0: once per loop tick). Overlays always get every event at once.
    viewer_batch_ms: int = Field(default=25, alias="GIFTING_VIEWER_BATCH_MS", ge=0, le=1000)
    # Each hub reports its viewers per stream this often; a report counts for
    # three beats, so a hub that dies stops counting within three beats.
    presence_ms: int = Field(default=5000, alias="GIFTING_PRESENCE_MS", ge=50, le=60_000)
    # How often each hub and persister looks for due deadlines in Redis (streak
    # ends, boxes, hype): the lateness of a deadline is at most about this.
    due_interval_ms: int = Field(default=200, alias="GIFTING_DUE_INTERVAL_MS", ge=20, le=10_000)
    # A room that had spends gets its creator's weekly board (a weekly_board event) this often.
    weekly_board_ms: int = Field(default=5000, alias="GIFTING_WEEKLY_BOARD_MS", ge=50, le=60_000)
    # A connection's send queue, in bytes: past it a viewer is closed 1013, and an
    # overlay catches up from the room's history at the pace its queue drains.
    send_queue_bytes: int = Field(
        default=1024 * 1024, alias="GIFTING_SEND_QUEUE_BYTES", ge=16 * 1024, le=256 * 1024 * 1024
    )
    # Open connections per holder on one hub process (a refused one gets 1013).
    max_connections_per_user: int = Field(
        default=16, alias="GIFTING_MAX_CONNECTIONS_PER_USER", ge=1, le=100_000
    )
    max_connections_per_overlay: int = Field(
        default=32, alias="GIFTING_MAX_CONNECTIONS_PER_OVERLAY", ge=1, le=100_000
    )
    # Which proxies' X-Forwarded-For is believed (comma-separated addresses, or "*"
    # when only the proxy can reach the hubs): behind one, the per-address cap
    # would otherwise count every client as the proxy's one address.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        alias="GIFTING_FORWARDED_ALLOW_IPS",
        pattern=r"^[0-9A-Fa-f.:/,* ]{1,512}$",
    )
    max_connections_per_address: int = Field(
        default=256, alias="GIFTING_MAX_CONNECTIONS_PER_ADDRESS", ge=1, le=1_000_000
    )
    rate_per_s: float = Field(default=20.0, alias="GIFTING_RATE_PER_S", gt=0, le=1_000_000)
    rate_burst: int = Field(default=40, alias="GIFTING_RATE_BURST", ge=1, le=1_000_000)
    # `gifting serve`: a request whose headers are not in this long after the connection
    # opened is answered 408 and closed (uvicorn alone waits forever: slowloris).
    handshake_timeout_s: float = Field(
        default=10.0, alias="GIFTING_HANDSHAKE_TIMEOUT_S", ge=1, le=300
    )
    # The server pings every heartbeat_s; a peer silent for idle_timeout_s after a ping is closed.
    heartbeat_s: float = Field(default=20.0, alias="GIFTING_HEARTBEAT_S", ge=1, le=600)
    idle_timeout_s: float = Field(default=20.0, alias="GIFTING_IDLE_TIMEOUT_S", ge=1, le=600)

    # The event feed (docs/protocol.md "The event feed"): SSE keepalive comments, and
    # webhook deliveries (per-attempt timeout, retry backoff base and cap, give-up age).
    feed_keepalive_s: float = Field(default=15.0, alias="GIFTING_FEED_KEEPALIVE_S", gt=0, le=300)
    webhook_timeout_s: float = Field(default=10.0, alias="GIFTING_WEBHOOK_TIMEOUT_S", gt=0, le=120)
    webhook_backoff_s: float = Field(default=10.0, alias="GIFTING_WEBHOOK_BACKOFF_S", gt=0, le=3600)
    webhook_backoff_max_s: float = Field(
        default=3600.0, alias="GIFTING_WEBHOOK_BACKOFF_MAX_S", gt=0, le=24 * 3600
    )
    webhook_give_up_s: float = Field(
        default=24 * 3600.0, alias="GIFTING_WEBHOOK_GIVE_UP_S", gt=0, le=30 * 24 * 3600
    )
    webhook_poll_ms: int = Field(default=500, alias="GIFTING_WEBHOOK_POLL_MS", ge=10, le=60_000)
    webhook_concurrency: int = Field(default=4, alias="GIFTING_WEBHOOK_CONCURRENCY", ge=1, le=64)

    # Persister
    persister_in_process: bool | None = Field(default=None, alias="GIFTING_PERSISTER_IN_PROCESS")
    persister_batch: int = Field(default=500, alias="GIFTING_PERSISTER_BATCH", ge=1, le=10_000)
    persister_claim_idle_ms: int = Field(
        default=10_000, alias="GIFTING_PERSISTER_CLAIM_IDLE_MS", ge=100, le=3_600_000
    )
    # Sharded persisters (a cluster): a dead one's shards are taken after this long.
    persister_lease_ms: int = Field(
        default=10_000, alias="GIFTING_PERSISTER_LEASE_MS", ge=300, le=600_000
    )


#: HMAC-SHA256 keys shorter than the digest weaken it (RFC 7518 3.2).
MIN_SECRET_BYTES: Final = 32
_SECRETS: Final = ("jwt_secret", "webhook_secret")


class SettingsError(ValueError):
    """The environment holds a setting outside its bounds; the message names each one."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and ``overrides``), or :class:`SettingsError`.

    The message names each bad setting by its environment variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            field = Settings.model_fields.get(name)
            alias = field.alias if field is not None and field.alias else name
            problems.append(f"{alias}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def check_secrets(settings: Settings) -> None:
    """Refuse the public development defaults, empty and short secrets, unless in dev mode.

    An empty or known webhook secret lets anyone sign a purchase (free coins);
    a known JWT secret lets anyone spend any wallet. Raises
    :class:`SettingsError` naming each weak secret.
    """
    if settings.dev:
        return
    problems = []
    for name in _SECRETS:
        value: str = getattr(settings, name)
        alias = Settings.model_fields[name].alias
        if value == Settings.model_fields[name].default:
            problems.append(f"{alias} still holds the public development default")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{alias} is shorter than {MIN_SECRET_BYTES} bytes")
    if problems:
        raise SettingsError(
            "; ".join(problems) + ": set long random secrets (e.g. `openssl rand -hex 32`), "
            "or GIFTING_DEV=1 for local development only"
        )
