-- 0008_boxes.sql: treasure boxes (gifting/core/boxes.py).
--
-- Two new ledger event types: 'box_claim' (a claimer credited its share:
-- user:<u>:coins +s, boxes:escrow -s) and 'box_return' (what nobody claimed
-- back to the dropper: user:<d>:coins +r, boxes:escrow -r; written once per
-- box, also with r = 0 and then no postings: the record that the box
-- settled). A drop is a 'spend' of kind 'box' (user:<d>:coins -N,
-- boxes:escrow +N). The CHECK is widened by adding to whatever list it holds
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
    IF position('box_claim' IN def) = 0 THEN
        ALTER TABLE ledger_events DROP CONSTRAINT ledger_events_type_check;
        EXECUTE 'ALTER TABLE ledger_events ADD CONSTRAINT ledger_events_type_check '
             || replace(def, '''cashout_failed''::text',
                        '''cashout_failed''::text, ''box_claim''::text, ''box_return''::text');
    END IF;
END
$$;

-- The audit joins a box's claims and return to its drop by the box id.
CREATE INDEX IF NOT EXISTS ledger_events_box
    ON ledger_events ((payload->>'box')) WHERE type IN ('box_claim', 'box_return');
