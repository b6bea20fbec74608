-- purchase.lua: credit the coins of a completed provider purchase, once.
--
-- KEYS[1]  wallet hash of the buyer              {wNN}
-- KEYS[2]  purchase record hash                  {wNN}
-- KEYS[3]  outbox stream of the buyer's shard    {wNN}
-- ARGV[1]  payload fingerprint (user, package, amount, currency)
-- ARGV[2]  coins of the package, integer > 0
-- ARGV[3]  new event id
-- ARGV[4]  now, unix ms
-- ARGV[5..] outbox entry field/value pairs (event, ts, balance are appended)
--
-- Returns {status, coins, balance}: "ok", "replay" (the first result again)
-- or "conflict" (same purchase id, another payload).

local prev = redis.call('HMGET', KEYS[2], 'fp', 'coins', 'balance')
if prev[1] then
  if prev[1] ~= ARGV[1] then return {'conflict', '', ''} end
  return {'replay', prev[2], prev[3]}
end

-- The outbox append first: if it fails, nothing is written.
local balance = tonumber(redis.call('HGET', KEYS[1], 'coins') or '0') + tonumber(ARGV[2])
local entry = {}
for i = 5, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[3]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[4]
entry[#entry + 1] = 'balance'; entry[#entry + 1] = tostring(balance)
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'coins', tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'coins', ARGV[2], 'balance', tostring(balance),
           'event', ARGV[3], 'refunded', '0')
return {'ok', ARGV[2], tostring(balance)}
