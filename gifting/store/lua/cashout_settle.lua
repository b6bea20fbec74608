-- cashout_settle.lua: settle a held cash-out as paid, or as failed (diamonds back).
--
-- KEYS[1]  wallet hash of the creator              {wNN}
-- KEYS[2]  cash-out record hash                    {wNN}
-- KEYS[3]  outbox stream of the creator's shard    {wNN}
-- ARGV[1]  "paid" or "failed"
-- ARGV[2]  new event id
-- ARGV[3]  now, unix ms
-- ARGV[4]  cash-out id
--
-- Returns {status, final status}: "ok", "replay" (already settled the same
-- way), "conflict" (already settled the other way) or "not_found".

local c = redis.call('HMGET', KEYS[2], 'user', 'diamonds', 'status')
if not c[1] then return {'not_found', ''} end
if c[3] ~= 'held' then
  if c[3] == ARGV[1] then return {'replay', c[3]} end
  return {'conflict', c[3]}
end

-- The outbox append first: if it fails, nothing is written.
redis.call('XADD', KEYS[3], '*', 'type', 'cashout_' .. ARGV[1], 'user', c[1],
           'cashout', ARGV[4], 'diamonds', c[2],
           'event', ARGV[2], 'ts', ARGV[3])
local d = tonumber(c[2])
redis.call('HINCRBY', KEYS[1], 'held', -d)
if ARGV[1] == 'paid' then
  redis.call('HINCRBY', KEYS[1], 'paid', d)
else
  redis.call('HINCRBY', KEYS[1], 'diamonds', d)
end
redis.call('HSET', KEYS[2], 'status', ARGV[1], 'settled', ARGV[3])
return {'ok', ARGV[1]}
