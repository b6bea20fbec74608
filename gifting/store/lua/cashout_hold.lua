-- cashout_hold.lua: hold a creator's diamonds for a cash-out request.
--
-- Idempotent by the creator's request id: a retry returns the same cash-out.
--
-- KEYS[1]  wallet hash of the creator              {wNN}
-- KEYS[2]  cash-out record hash                    {wNN}
-- KEYS[3]  request id -> "<cash-out id>:<diamonds>"  {wNN}
-- KEYS[4]  the creator's cash-outs sorted set      {wNN}
-- KEYS[5]  outbox stream of the creator's shard    {wNN}
-- ARGV[1]  new cash-out id
-- ARGV[2]  diamonds to hold, integer > 0 and a multiple of the cash-out unit
-- ARGV[3]  minimum diamonds per cash-out
-- ARGV[4]  current day "YYYY-MM-DD" (UTC)
-- ARGV[5]  daily cap, diamonds
-- ARGV[6]  amount in minor units
-- ARGV[7]  currency
-- ARGV[8]  now, unix ms
-- ARGV[9]  user id
-- ARGV[10] seconds to keep the request id
-- ARGV[11] new event id
--
-- Returns {status, cashout id}: "ok", "replay", "conflict", "below_minimum",
-- "insufficient_funds" or "daily_cap".

-- The request marker holds "<cash-out id>:<diamonds>" (ids never contain ':'), so a
-- retry is told from a reuse of the id without reading the first record (its key
-- is not among KEYS).
local prior = redis.call('GET', KEYS[3])
if prior then
  local prior_id, prior_diamonds = string.match(prior, '^([^:]+):(%d+)$')
  if prior_diamonds ~= ARGV[2] then return {'conflict', prior_id or ''} end
  return {'replay', prior_id}
end

local diamonds = tonumber(ARGV[2])
if diamonds < tonumber(ARGV[3]) then return {'below_minimum', ''} end
local w = redis.call('HMGET', KEYS[1], 'diamonds', 'cday', 'ctotal')
if tonumber(w[1] or '0') < diamonds then return {'insufficient_funds', ''} end
local today = 0
if w[2] == ARGV[4] then today = tonumber(w[3] or '0') end
if today + diamonds > tonumber(ARGV[5]) then return {'daily_cap', ''} end

-- The outbox append first: if it fails, nothing is written.
local pos = redis.call('XADD', KEYS[5], '*', 'type', 'cashout_hold', 'user', ARGV[9], 'cashout', ARGV[1],
           'diamonds', ARGV[2], 'amount', ARGV[6], 'currency', ARGV[7],
           'event', ARGV[11], 'ts', ARGV[8])
redis.call('HINCRBY', KEYS[1], 'diamonds', -diamonds)
redis.call('HINCRBY', KEYS[1], 'held', diamonds)
redis.call('HSET', KEYS[1], 'cday', ARGV[4], 'ctotal', tostring(today + diamonds), 'pos', pos)
-- The record keeps the day whose cap it counts against: a failed payout gives it back.
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'user', ARGV[9], 'diamonds', ARGV[2], 'amount', ARGV[6],
           'currency', ARGV[7], 'status', 'held', 'created', ARGV[8], 'event', ARGV[11],
           'day', ARGV[4])
redis.call('SET', KEYS[3], ARGV[1] .. ':' .. ARGV[2], 'EX', tonumber(ARGV[10]))
redis.call('ZADD', KEYS[4], tonumber(ARGV[8]), ARGV[1])
return {'ok', ARGV[1]}
