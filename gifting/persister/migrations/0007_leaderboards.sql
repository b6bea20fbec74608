-- 0007_leaderboards.sql: leaderboards by period, the durable side (docs/architecture.md).
--
-- The persister adds each credit it newly inserts into ledger_events (never a
-- replayed one: the same transaction, only the rows ON CONFLICT let through)
-- to two aggregates, by the period of the SPEND's time (the credit's
-- spend_ts; its ts for a credit from before leaderboards):
--   board_supporters  coins a creator (the credited user: a host, a guest, a
--                     video's creator) received from each sender per period
--   board_creators    coins each creator received per period
-- A period is an ISO week "IYYY-Www" or a month "YYYY-MM", both UTC. Redis
-- holds the period in progress (credit.lua); past periods are read here.

CREATE TABLE board_supporters (
    creator_id text NOT NULL,
    period     text NOT NULL,                  -- "2026-W49" or "2026-12"
    user_id    text NOT NULL,                  -- the sender
    name       text NOT NULL,                  -- the sender's latest display name
    coins      bigint NOT NULL CHECK (coins > 0),
    PRIMARY KEY (creator_id, period, user_id)
);
CREATE INDEX board_supporters_rank ON board_supporters (creator_id, period, coins DESC, user_id);

CREATE TABLE board_creators (
    period     text NOT NULL,
    creator_id text NOT NULL,
    coins      bigint NOT NULL CHECK (coins > 0),
    PRIMARY KEY (period, creator_id)
);
CREATE INDEX board_creators_rank ON board_creators (period, coins DESC, creator_id);

-- The credits persisted before this migration, each counted once.
WITH c AS (
    SELECT e.user_id AS creator_id, e.payload->>'sender' AS user_id,
           COALESCE(NULLIF(s.payload->>'name', ''), e.payload->>'sender') AS name,
           (e.payload->>'coins')::bigint AS coins,
           to_timestamp(COALESCE(s.ts, e.ts) / 1000.0) AT TIME ZONE 'UTC' AS at
    FROM ledger_events e
    LEFT JOIN ledger_events s ON s.event_id = e.payload->>'spend_event'
    WHERE e.type = 'credit'
), p AS (
    SELECT creator_id, user_id, name, coins, to_char(at, 'IYYY-"W"IW') AS period FROM c
    UNION ALL
    SELECT creator_id, user_id, name, coins, to_char(at, 'YYYY-MM') FROM c
), sums AS (
    INSERT INTO board_supporters (creator_id, period, user_id, name, coins)
    SELECT creator_id, period, user_id, max(name), sum(coins) FROM p
    GROUP BY creator_id, period, user_id
    RETURNING creator_id, period, coins
)
INSERT INTO board_creators (period, creator_id, coins)
SELECT period, creator_id, sum(coins) FROM sums GROUP BY period, creator_id;
