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
-- KEYS[4]  the creator's supporters this ISO week (of the spend's time)  {wNN}
-- KEYS[5]  the creator's supporters this month (of the spend's time)     {wNN}
-- KEYS[6]  supporters' display names of the creator                     {wNN}
-- KEYS[7]  the shard's top creators of the week                          {wNN}
-- KEYS[8]  the shard's top creators of the month                         {wNN}
-- ARGV[1]  coins of the spend, integer > 0
-- ARGV[2]  creator share, basis points
-- ARGV[3]  new event id for the credit
-- ARGV[4]  now, unix ms
-- ARGV[5]  not after, unix ms: past it (Redis's clock) the credit is refused "stale"
-- ARGV[6]  the sender (the supporter on the boards)
-- ARGV[7]  the sender's display name ("": keep the one known)
-- ARGV[8]  unix ms the week's board keys expire at (some time after the week ends)
-- ARGV[9]  unix ms the month's board keys expire at
-- ARGV[10] the creator (the member of the top-creators sets)
-- ARGV[11..] outbox entry field/value pairs (diamonds, event, ts are appended)
--
-- The boards (gifting/store/boards.py) count the coins credited, here, once
-- with the diamonds: a replay returns before any write. An expiry already
-- past (a late repair of a spend from an ended period) deletes the key at
-- once: past periods are read from PostgreSQL.
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
for i = 11, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'diamonds'; entry[#entry + 1] = tostring(delta)
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[3]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[4]
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'received', coins)
redis.call('HINCRBY', KEYS[1], 'earned', delta)
redis.call('HINCRBY', KEYS[1], 'diamonds', delta)
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('SET', KEYS[2], tostring(delta))

-- A member is new exactly when its score is now this credit's coins (scores only
-- grow); a new key has a new member, so the expiry is set once per member, not per credit.
local function count(key, member, expire_at)
  if tonumber(redis.call('ZINCRBY', key, coins, member)) == coins then
    redis.call('PEXPIREAT', key, expire_at)
  end
end
local sender = ARGV[6]
count(KEYS[4], sender, ARGV[8])
count(KEYS[5], sender, ARGV[9])
count(KEYS[7], ARGV[10], ARGV[8])
count(KEYS[8], ARGV[10], ARGV[9])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[6], sender, ARGV[7]) end
-- The names live as long as the later of the two periods (GT: never shortened).
local names_until = math.max(tonumber(ARGV[8]), tonumber(ARGV[9]))
if redis.call('PTTL', KEYS[6]) == -1 then
  redis.call('PEXPIREAT', KEYS[6], names_until)
else
  redis.call('PEXPIREAT', KEYS[6], names_until, 'GT')
end
return {'ok', tostring(delta)}
