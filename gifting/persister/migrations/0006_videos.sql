-- 0006_videos.sql: gifts on videos (DESIGN.md §10).
--
-- A gift on a video is a spend like a live gift: its outbox entry (and so the
-- payload of its ledger_events row, and of its creator's credit) carries a
-- "video" field and no stream. The ledger names its place "video:<id>" in
-- stream_id, stream_totals and creator_earnings (no stream id holds a colon),
-- so the audit's totals hold them; video_id below names the video alone.

-- The video of a spend or credit row, from its payload (NULL for everything else).
ALTER TABLE ledger_events
    ADD COLUMN video_id text GENERATED ALWAYS AS (payload->>'video') STORED;
CREATE INDEX ledger_events_video ON ledger_events (video_id, ts) WHERE video_id IS NOT NULL;

-- The videos creators registered (POST /v1/videos). Redis holds the live copy
-- ({v:<video>}:video); this is its durable record, written when it is created.
CREATE TABLE videos (
    video_id    text PRIMARY KEY,
    creator_id  text NOT NULL,
    title       text NOT NULL,
    created_ms  bigint NOT NULL
);
CREATE INDEX videos_creator ON videos (creator_id, created_ms DESC);
