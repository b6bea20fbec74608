-- 0001_ledger.sql: the durable double-entry ledger written by the persister.
--
-- One row in ledger_events per settled Redis event (the event id is the
-- idempotency key: the persister inserts with ON CONFLICT DO NOTHING), and for
-- each newly inserted event its postings, which sum to zero per currency.
--
-- Accounts (text, "<owner>:<id>:<what>" or "<side>:<what>"):
--   coins     user:<id>:coins            a viewer's spendable coins
--             external:payments          real money turned into coins (purchases, refunds)
--             creator:<id>:received      coins of gifts, effects and highlights a creator received
--             platform:revenue           coins spent on profile badges (kept by the platform)
--   diamonds  user:<id>:diamonds         a creator's spendable diamonds
--             user:<id>:held             diamonds held for a pending cash-out
--             user:<id>:paid             diamonds paid out
--             platform:diamond_issuance  where credited diamonds are minted
-- Every amount is a signed bigint: a balance is the sum of its postings.

CREATE TABLE ledger_events (
    event_id     text PRIMARY KEY,
    type         text NOT NULL CHECK (type IN ('purchase', 'refund', 'spend', 'credit',
                                               'cashout_hold', 'cashout_paid', 'cashout_failed')),
    user_id      text NOT NULL,
    ts           bigint NOT NULL,              -- unix ms, as stamped by the Lua script
    stream_id    text,                         -- the live stream of a spend or credit
    outbox_id    text NOT NULL,                -- the Redis stream entry id "<ms>-<seq>"
    outbox_ms    bigint NOT NULL,              -- ... split, for ordering: every event of a
    outbox_seq   bigint NOT NULL,              -- user is in that user's outbox, in Redis order
    payload      jsonb NOT NULL,               -- the outbox entry as written by Redis
    persisted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_events_user_order
    ON ledger_events (user_id, outbox_ms DESC, outbox_seq DESC, event_id DESC);
CREATE INDEX ledger_events_type ON ledger_events (type);

CREATE TABLE postings (
    posting_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   text NOT NULL REFERENCES ledger_events (event_id),
    account    text NOT NULL,
    currency   text NOT NULL CHECK (currency IN ('coins', 'diamonds')),
    amount     bigint NOT NULL CHECK (amount <> 0)
);
CREATE INDEX postings_event ON postings (event_id);
CREATE INDEX postings_account ON postings (account, currency);

-- Per live stream: what it received (spends only; updated once per new event).
CREATE TABLE stream_totals (
    stream_id  text PRIMARY KEY,
    creator_id text NOT NULL,
    coins      bigint NOT NULL DEFAULT 0,     -- coins of every spend in the stream
    gifts      bigint NOT NULL DEFAULT 0,     -- gift items (counts) received
    spends     bigint NOT NULL DEFAULT 0,     -- spend events
    first_ts   bigint NOT NULL,
    last_ts    bigint NOT NULL
);

-- Per creator and stream: coins received (spends) and diamonds credited (credits).
CREATE TABLE creator_earnings (
    creator_id     text NOT NULL,
    stream_id      text NOT NULL,
    coins          bigint NOT NULL DEFAULT 0, -- coins of the spends to the creator
    credited_coins bigint NOT NULL DEFAULT 0, -- coins of the credits (equal once all are credited)
    diamonds       bigint NOT NULL DEFAULT 0, -- diamonds credited
    gifts          bigint NOT NULL DEFAULT 0, -- gift items received
    spends         bigint NOT NULL DEFAULT 0, -- spend events
    last_ts        bigint NOT NULL,
    PRIMARY KEY (creator_id, stream_id)
);

CREATE TABLE purchases (
    purchase_id text PRIMARY KEY,
    user_id     text NOT NULL,
    package     text NOT NULL,
    coins       bigint NOT NULL CHECK (coins > 0),
    amount      bigint NOT NULL,             -- real money, minor units
    currency    text NOT NULL,
    event_id    text NOT NULL UNIQUE REFERENCES ledger_events (event_id),
    ts          bigint NOT NULL
);
CREATE INDEX purchases_user ON purchases (user_id, ts DESC);

CREATE TABLE refunds (
    purchase_id text PRIMARY KEY,
    user_id     text NOT NULL,
    coins       bigint NOT NULL CHECK (coins > 0),
    event_id    text NOT NULL UNIQUE REFERENCES ledger_events (event_id),
    ts          bigint NOT NULL
);

-- A cash-out row is written by its hold and updated by its settlement, in
-- either order (a reclaimed hold may be persisted after its settlement).
CREATE TABLE cashouts (
    cashout_id   text PRIMARY KEY,
    user_id      text NOT NULL,
    diamonds     bigint NOT NULL CHECK (diamonds > 0),
    amount       bigint,                     -- real money, minor units (from the hold)
    currency     text,
    status       text NOT NULL CHECK (status IN ('held', 'paid', 'failed')),
    hold_event   text REFERENCES ledger_events (event_id),
    created_ts   bigint,
    settle_event text REFERENCES ledger_events (event_id),
    settled_ts   bigint
);
CREATE INDEX cashouts_user ON cashouts (user_id, created_ts DESC);
