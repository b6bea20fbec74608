-- box_credit.lua: credit a claimer's share of a treasure box, once.
--
-- Run in the claimer's wallet slot by the hub that recorded the claim and,
-- for every claim, by the box's close (which repairs a claim whose process
-- died before crediting). Idempotent by the (box, claimer) marker, which has
-- no expiry: a box is settled once, and its markers are few.
--
-- KEYS[1]  wallet hash of the claimer               {wNN}
-- KEYS[2]  credited marker for (box, claimer)        {wNN}
-- KEYS[3]  outbox stream of the claimer's shard      {wNN}
-- ARGV[1]  share, coins, integer > 0
-- ARGV[2]  event id (derived from box and claimer)
-- ARGV[3]  now, unix ms
-- ARGV[4..] outbox entry field/value pairs (event, ts, balance are appended)
--
-- Returns {status, balance}: "ok" or "replay" (the balance right after the credit).

local done = redis.call('GET', KEYS[2])
if done then return {'replay', done} end
local share = tonumber(ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'coins') or '0') + share
-- The outbox append first: if it fails, nothing is written.
local entry = {}
for i = 4, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[2]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[3]
entry[#entry + 1] = 'balance'; entry[#entry + 1] = tostring(balance)
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))
redis.call('HINCRBY', KEYS[1], 'coins', share)
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('SET', KEYS[2], tostring(balance))
return {'ok', tostring(balance)}
