-- 0002_spend_ids.sql: PostgreSQL is the long-term record of every debited spend's id.
--
-- A spend's idempotency key is (sender, client message id). spend.lua keeps
-- its result in Redis until the persister has written it here; the persister
-- then shortens the Redis record to a recent window, and the hub looks a
-- batch's ids up here, replaying the original result of those it finds
-- (docs/architecture.md, "Durable ids"). Written in the transaction of the
-- spend's ledger event, so an id is here exactly when its spend is.
--
-- Only debited spends are here: a refused spend moved no money, never reaches
-- the outbox, and keeps its result in Redis only (gifting/core/idempotency.py).
-- If two events ever carry one id (debited twice before this table existed),
-- the first in outbox order is the id's result.

CREATE TABLE spend_ids (
    sender_id   text NOT NULL,
    client_id   text NOT NULL,
    event_id    text NOT NULL UNIQUE REFERENCES ledger_events (event_id),
    status      text NOT NULL CHECK (status = 'ok'),
    balance     bigint NOT NULL,              -- the sender's coins right after the spend
    combo       bigint NOT NULL,              -- the streak count it reached
    fingerprint text NOT NULL,                -- SpendArgs.fingerprint(): kind, item, count,
                                              -- stream, text (tells a retry from a reuse)
    ts          bigint NOT NULL,              -- unix ms, as stamped by the Lua script
    PRIMARY KEY (sender_id, client_id)
);

-- The spends already persisted, with the fingerprint computed as
-- gifting.core.ids.fingerprint does: sha256 of the parts joined by U+001F,
-- the first 24 hex digits.
INSERT INTO spend_ids (sender_id, client_id, event_id, status, balance, combo, fingerprint, ts)
SELECT user_id, payload->>'client_id', event_id, 'ok', (payload->>'balance')::bigint,
       (payload->>'combo')::bigint,
       left(encode(sha256(convert_to(concat_ws(chr(31), payload->>'kind', payload->>'item',
                                               payload->>'count', payload->>'stream',
                                               COALESCE(payload->>'text', '')),
                                     'UTF8')), 'hex'), 24),
       ts
FROM ledger_events
WHERE type = 'spend'
ORDER BY outbox_ms, outbox_seq, event_id
ON CONFLICT (sender_id, client_id) DO NOTHING;
