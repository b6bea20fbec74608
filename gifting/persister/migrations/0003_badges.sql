-- 0003_badges.sql: the profile badges each user owns, durable.
--
-- One row per badge spend (a debited spend of kind 'badge'), written by the
-- persister in the transaction of the spend's ledger event, so a badge is here
-- exactly when its purchase is (the audit checks it). Redis keeps the same set
-- for display (the user's wallet slot); the badge shown is the dearest owned
-- (gifting/core/badges.py), derived, not stored here.

CREATE TABLE badges_owned (
    user_id  text NOT NULL,
    badge    text NOT NULL,
    event_id text NOT NULL PRIMARY KEY REFERENCES ledger_events (event_id),
    ts       bigint NOT NULL                -- unix ms, as stamped by spend.lua
);

CREATE INDEX badges_owned_by_user ON badges_owned (user_id, badge);

-- The badges bought before this table existed.
INSERT INTO badges_owned (user_id, badge, event_id, ts)
SELECT user_id, payload->>'item', event_id, ts
FROM ledger_events
WHERE type = 'spend' AND payload->>'kind' = 'badge'
ON CONFLICT (event_id) DO NOTHING;
