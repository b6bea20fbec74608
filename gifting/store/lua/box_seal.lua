-- box_seal.lua: stop a treasure box taking claims, and read what it holds.
--
-- The close's first step (gifting/store/boxes.py): after it no claim is
-- recorded, whatever any clock says, so the claims it returns are final and
-- the return (the coins minus the claimed ones) is computed once for all.
-- Idempotent: a sealed or settled box stays so.
--
-- KEYS[1]  box hash                                  {r:stream}
-- KEYS[2]  box claims hash                           {r:stream}
--
-- Returns {status, box fields (flat name, value list), claims (flat user, value
-- list)}: status "missing" (no such box yet: the drop's repair creates it) or
-- the box's state after sealing ("sealed" or "settled").

if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', {}, {}} end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'sealed')
  state = 'sealed'
end
return {state, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
