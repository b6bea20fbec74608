-- 0005_webhooks.sql: webhook subscriptions of the event feed and their delivery log.
--
-- A subscription belongs to a creator and names the event kinds it wants
-- (and optionally one stream; else every stream of the creator). The feed
-- worker (gifting/feed/worker.py) copies each room event it reads from a
-- stream's Redis history into one delivery row per matching subscription,
-- and advances the stream's position (webhook_feed_positions.cursor, a room
-- cursor) in the same transaction: a restart resumes from there, and the
-- unique (subscription_id, event_id) makes a copy read twice harmless.
-- Each delivery is then POSTed until its receiver answers 2xx, retried with
-- backoff until it is older than the give-up age; every try is one row of
-- webhook_attempts (what GET /v1/webhook-subscriptions/{id}/deliveries shows).

CREATE TABLE webhook_subscriptions (
    id          text PRIMARY KEY,
    creator_id  text NOT NULL,
    url         text NOT NULL,
    kinds       text[] NOT NULL,
    stream_id   text,                          -- NULL: every stream of the creator
    secret      text NOT NULL,
    created_ms  bigint NOT NULL,               -- events before it are not delivered
    deleted_ms  bigint                         -- NULL while active
);
CREATE INDEX webhook_subscriptions_creator ON webhook_subscriptions (creator_id)
    WHERE deleted_ms IS NULL;

-- How far the feed worker has read each stream's room history.
CREATE TABLE webhook_feed_positions (
    stream_id   text PRIMARY KEY,
    creator_id  text NOT NULL,
    cursor      text NOT NULL,
    ended       boolean NOT NULL DEFAULT false  -- stream_ended read: nothing more to read
);

CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES webhook_subscriptions (id),
    event_id        text NOT NULL,
    stream_id       text NOT NULL,
    kind            text NOT NULL,
    seq             bigint NOT NULL,
    body            text NOT NULL,             -- the exact bytes signed and sent
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    created_ms      bigint NOT NULL,
    next_ms         bigint NOT NULL,           -- when the next try is due (pending only)
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription_id, next_ms)
    WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id),
    subscription_id text NOT NULL,
    attempt      integer NOT NULL,
    at_ms        bigint NOT NULL,
    status       integer,                      -- the receiver's HTTP status; NULL: no answer
    latency_ms   integer NOT NULL,
    error        text,                         -- timeout, connection refused, ...
    next_ms      bigint                        -- the retry it scheduled; NULL: none
);
CREATE INDEX webhook_attempts_subscription ON webhook_attempts (subscription_id, id);
