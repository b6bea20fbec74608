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
-- ARGV[5]  seconds to keep the credited marker
-- ARGV[6..] outbox entry field/value pairs (diamonds, event, ts are appended)
--
-- Returns {status, diamonds}: "ok" or "replay" (already credited; diamonds then
-- are those of the first credit).

local done = redis.call('GET', KEYS[2])
if done then return {'replay', done} end

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
redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'received', coins)
redis.call('HINCRBY', KEYS[1], 'earned', delta)
redis.call('HINCRBY', KEYS[1], 'diamonds', delta)
redis.call('SET', KEYS[2], tostring(delta), 'EX', tonumber(ARGV[5]))
return {'ok', tostring(delta)}
