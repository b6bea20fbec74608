-- refund.lua: claw back the coins of a refunded purchase, once.
-- The balance may go negative; every spend is then refused until it is positive.
--
-- KEYS[1]  wallet hash of the buyer              {wNN}
-- KEYS[2]  purchase record hash                  {wNN}
-- KEYS[3]  outbox stream of the buyer's shard    {wNN}
-- ARGV[1]  new event id
-- ARGV[2]  now, unix ms
-- ARGV[3..] outbox entry field/value pairs (coins, event, ts, balance are appended)
--
-- Returns {status, coins, balance}: "ok", "replay" or "not_found".

local p = redis.call('HMGET', KEYS[2], 'coins', 'refunded', 'refund_balance')
if not p[1] then return {'not_found', '', ''} end
if p[2] == '1' then return {'replay', p[1], p[3]} end

-- The outbox append first: if it fails, nothing is written.
local balance = tonumber(redis.call('HGET', KEYS[1], 'coins') or '0') - tonumber(p[1])
local entry = {}
for i = 3, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'coins'; entry[#entry + 1] = p[1]
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[1]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[2]
entry[#entry + 1] = 'balance'; entry[#entry + 1] = tostring(balance)
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'coins', -tonumber(p[1]))
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('HSET', KEYS[2], 'refunded', '1', 'refund_event', ARGV[1],
           'refund_balance', tostring(balance))
return {'ok', p[1], tostring(balance)}
