-- box_create.lua: create a treasure box's state from its drop, once.
--
-- Run by the hub's settle step right after the drop's debit and by the
-- persister's repair of the drop's outbox entry (gifting/store/boxes.py):
-- whichever comes first creates the box, the other is a replay. Every value
-- derives from the drop's entry, so both write the same box.
--
-- KEYS[1]  box hash                                  {r:stream}
-- ARGV[1]  dropper id
-- ARGV[2]  dropper display name
-- ARGV[3]  coins, integer >= 100
-- ARGV[4]  winners, 1..100
-- ARGV[5]  opens at, unix ms
-- ARGV[6]  closes at, unix ms
-- ARGV[7]  the drop's event id
-- ARGV[8]  not after, unix ms (Redis's clock): past it a first creation is refused
--          "stale" (the repair's deadline, as for emit.lua: gifting/store/retire.py)
--
-- Returns {status}: "ok", "replay" (the box exists) or "stale" (nothing written).

if redis.call('EXISTS', KEYS[1]) == 1 then return {'replay'} end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[8]) then
  return {'stale'}
end
redis.call('HSET', KEYS[1], 'dropper', ARGV[1], 'name', ARGV[2], 'coins', ARGV[3],
           'winners', ARGV[4], 'opens_at', ARGV[5], 'closes_at', ARGV[6],
           'drop_event', ARGV[7], 'state', 'open', 'claims', '0', 'claimed', '0')
return {'ok'}
