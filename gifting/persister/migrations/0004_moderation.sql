-- 0004_moderation.sql: cash-out cancels, and the history of moderation actions.
--
-- A held cash-out may be cancelled by its creator (cashout_cancel.lua): a new
-- ledger event type 'cashout_cancelled' (postings user:<u>:held -d,
-- user:<u>:diamonds +d, like a failed payout) and a new cash-out status
-- 'cancelled'. Both CHECKs are widened by adding to whatever list they hold
-- now, so another migration that added a type of its own keeps it.

DO $$
DECLARE
    def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'ledger_events_type_check' AND conrelid = 'ledger_events'::regclass;
    IF def IS NULL OR position('cashout_failed' IN def) = 0 THEN
        RAISE EXCEPTION 'ledger_events_type_check is not the one 0001 created: %', def;
    END IF;
    IF position('cashout_cancelled' IN def) = 0 THEN
        ALTER TABLE ledger_events DROP CONSTRAINT ledger_events_type_check;
        EXECUTE 'ALTER TABLE ledger_events ADD CONSTRAINT ledger_events_type_check '
             || replace(def, '''cashout_failed''::text',
                        '''cashout_failed''::text, ''cashout_cancelled''::text');
    END IF;

    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'cashouts_status_check' AND conrelid = 'cashouts'::regclass;
    IF def IS NULL OR position('failed' IN def) = 0 THEN
        RAISE EXCEPTION 'cashouts_status_check is not the one 0001 created: %', def;
    END IF;
    IF position('cancelled' IN def) = 0 THEN
        ALTER TABLE cashouts DROP CONSTRAINT cashouts_status_check;
        EXECUTE 'ALTER TABLE cashouts ADD CONSTRAINT cashouts_status_check '
             || replace(def, '''failed''::text', '''failed''::text, ''cancelled''::text');
    END IF;
END
$$;

-- Who did what, when, in a creator's streams: written by the HTTP API after
-- the action took effect in Redis (gifting/api/moderation.py), read by
-- GET /v1/streams/{id}/moderation. Only actions that changed something are
-- kept (a repeated block or hide is not a second action).
CREATE TABLE moderation_actions (
    id          bigserial PRIMARY KEY,
    creator_id  text NOT NULL,                -- whose streams
    stream_id   text,                         -- the stream acted in (null: moderator changes)
    actor_id    text NOT NULL,                -- the creator or a moderator
    action      text NOT NULL CHECK (action IN ('moderator_added', 'moderator_removed',
                                                'block', 'unblock', 'hide')),
    target_user text,                         -- the user blocked, unblocked, (un)named
    target_event text,                        -- the room event hidden
    scope       text CHECK (scope IN ('stream', 'creator')),
    ts          bigint NOT NULL,              -- unix ms, the server's clock
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_actions_stream ON moderation_actions (stream_id, id DESC);
CREATE INDEX moderation_actions_creator ON moderation_actions (creator_id, id DESC);
