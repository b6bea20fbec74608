-- credit.lua: credit a creator's diamonds for one settled spend, once.
--
-- Diamonds follow the creator's running total of coins received (DESIGN.md 2):
-- a spend of N coins on a total of C credits
--     floor((C + N) * bps / 10000) - floor(C * bps / 10000)
-- computed as q*bps + floor(r*bps/10000) with C = 10000q + r, so no product
-- leaves the range where Lua's doubles are exact.
--
-- KEYS[1]  wallet hash of the creator             {wNN}
-- KEYS[2]  credited marker for the spend event    {wNN}
-- KEYS[3]  outbox stream of the creator's shard   {wNN}
-- ARGV[1]  coins of the spend, integer > 0
-- ARGV[2]  creator share, basis points
-- ARGV[3]  new event id for the credit
-- ARGV[4]  now, unix ms
-- ARGV[5]  not after, unix ms: past it (Redis's clock) the credit is refused "stale"
-- ARGV[6..] outbox entry field/value pairs (diamonds, event, ts are appended)
--
-- Returns {status, diamonds}: "ok", "replay" (already credited; diamonds then
-- are those of the first credit) or "stale" (nothing written).
--
-- The credited marker has no expiry until the persister, having persisted and
-- acknowledged the spend, shortens it to a recent window (retire.lua). A
-- caller past its deadline (ARGV[5], half that window after the spend or
-- after the persister read its entry) is refused, so no credit can run after
-- its marker expired (gifting/store/retire.py gives the argument).

local done = redis.call('GET', KEYS[2])
if done then return {'replay', done} end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[5]) then
  return {'stale', ''}
end

local function earned(c, bps)
  local q = math.floor(c / 10000)
  local r = c - q * 10000
  return q * bps + math.floor(r * bps / 10000)
end

local coins = tonumber(ARGV[1])
local bps = tonumber(ARGV[2])
local received = tonumber(redis.call('HGET', KEYS[1], 'received') or '0')
local delta = earned(received + coins, bps) - earned(received, bps)

-- The outbox append first: if it fails, nothing is written.
local entry = {}
for i = 6, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'diamonds'; entry[#entry + 1] = tostring(delta)
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[3]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[4]
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'received', coins)
redis.call('HINCRBY', KEYS[1], 'earned', delta)
redis.call('HINCRBY', KEYS[1], 'diamonds', delta)
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('SET', KEYS[2], tostring(delta))
return {'ok', tostring(delta)}
