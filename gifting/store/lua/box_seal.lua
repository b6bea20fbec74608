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
-- list)}: status "missing" (no such box yet: the drop's repair creates it),
-- "early" (an open box before its closes_at by Redis's clock: nothing written;
-- the box fields are just closes_at) or the box's state after sealing
-- ("sealed" or "settled").

if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', {}, {}} end
local state = redis.call('HGET', KEYS[1], 'state')
local closes = redis.call('HGET', KEYS[1], 'closes_at')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if state == 'open' and now < tonumber(closes) then
  return {'early', {'closes_at', closes}, {}}  -- a runner whose clock is ahead of Redis's
end
if state == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'sealed')
  state = 'sealed'
end
return {state, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
