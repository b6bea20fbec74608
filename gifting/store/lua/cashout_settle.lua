-- cashout_settle.lua: settle a held cash-out as paid, or as failed (diamonds back);
-- or mark it "processing" (the payout provider is paying it: no money moves,
-- and from then on its creator can no longer cancel it).
--
-- A failed payout sent nothing out: it returns the diamonds AND releases the
-- daily cap it used, when the creator's cap is still counting that cash-out's
-- day (a later day starts from zero anyway).
--
-- KEYS[1]  wallet hash of the creator              {wNN}
-- KEYS[2]  cash-out record hash                    {wNN}
-- KEYS[3]  outbox stream of the creator's shard    {wNN}
-- ARGV[1]  "paid", "failed" or "processing"
-- ARGV[2]  new event id
-- ARGV[3]  now, unix ms
-- ARGV[4]  cash-out id
-- ARGV[5]  the day "YYYY-MM-DD" (UTC) the cash-out was created, for records
--          written before they kept their own 'day'
--
-- Returns {status, final status}: "ok", "replay" (already settled the same
-- way), "conflict" (already settled the other way, or "processing" after a
-- settlement) or "not_found". A processing cash-out settles as a held one.

local c = redis.call('HMGET', KEYS[2], 'user', 'diamonds', 'status', 'day')
if not c[1] then return {'not_found', ''} end
if c[3] ~= 'held' and not (c[3] == 'processing' and ARGV[1] ~= 'processing') then
  if c[3] == ARGV[1] then return {'replay', c[3]} end
  return {'conflict', c[3]}
end
if ARGV[1] == 'processing' then
  redis.call('HSET', KEYS[2], 'status', 'processing')
  return {'ok', 'processing'}
end

local d = tonumber(c[2])
local release = 0
if ARGV[1] == 'failed' then
  local w = redis.call('HMGET', KEYS[1], 'cday', 'ctotal')
  if w[1] == (c[4] or ARGV[5]) then release = math.min(d, tonumber(w[2] or '0')) end
end

-- The outbox append first: if it fails, nothing is written.
local pos = redis.call('XADD', KEYS[3], '*', 'type', 'cashout_' .. ARGV[1], 'user', c[1],
           'cashout', ARGV[4], 'diamonds', c[2],
           'event', ARGV[2], 'ts', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'held', -d)
redis.call('HSET', KEYS[1], 'pos', pos)
if ARGV[1] == 'paid' then
  redis.call('HINCRBY', KEYS[1], 'paid', d)
else
  redis.call('HINCRBY', KEYS[1], 'diamonds', d)
  if release > 0 then redis.call('HINCRBY', KEYS[1], 'ctotal', -release) end
end
redis.call('HSET', KEYS[2], 'status', ARGV[1], 'settled', ARGV[3])
return {'ok', ARGV[1]}
