-- cashout_cancel.lua: the creator cancels a held cash-out; the diamonds return.
--
-- Allowed while the cash-out is 'held' (the payout provider has not been
-- asked: see gifting/store/cashouts.py). Like a failed payout it returns the
-- diamonds and releases the daily cap it used, when the creator's cap is
-- still counting that cash-out's day. Idempotent by the cash-out id.
--
-- KEYS[1]  wallet hash of the creator              {wNN}
-- KEYS[2]  cash-out record hash                    {wNN}
-- KEYS[3]  outbox stream of the creator's shard    {wNN}
-- ARGV[1]  the caller (only the cash-out's own creator may cancel it)
-- ARGV[2]  new event id
-- ARGV[3]  now, unix ms
-- ARGV[4]  cash-out id
-- ARGV[5]  the day "YYYY-MM-DD" (UTC) the cash-out was created, for records
--          written before they kept their own 'day'
--
-- Returns {status, final status}: "ok", "replay" (already cancelled),
-- "conflict" (already paid or failed), "forbidden" (another user's) or
-- "not_found". Everything is checked before the first write.

local c = redis.call('HMGET', KEYS[2], 'user', 'diamonds', 'status', 'day')
if not c[1] then return {'not_found', ''} end
if c[1] ~= ARGV[1] then return {'forbidden', ''} end
if c[3] ~= 'held' then
  if c[3] == 'cancelled' then return {'replay', c[3]} end
  if c[3] == 'processing' then return {'processing', c[3]} end
  return {'conflict', c[3]}
end

local d = tonumber(c[2])
local release = 0
local w = redis.call('HMGET', KEYS[1], 'cday', 'ctotal')
if w[1] == (c[4] or ARGV[5]) then release = math.min(d, tonumber(w[2] or '0')) end

-- The outbox append first: if it fails, nothing is written.
local pos = redis.call('XADD', KEYS[3], '*', 'type', 'cashout_cancelled', 'user', c[1],
           'cashout', ARGV[4], 'diamonds', c[2],
           'event', ARGV[2], 'ts', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'held', -d)
-- The wallet's outbox position (the audit compares the wallet with the ledger there).
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('HINCRBY', KEYS[1], 'diamonds', d)
if release > 0 then redis.call('HINCRBY', KEYS[1], 'ctotal', -release) end
redis.call('HSET', KEYS[2], 'status', 'cancelled', 'settled', ARGV[3])
return {'ok', 'cancelled'}
