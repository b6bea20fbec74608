-- box_return.lua: give a treasure box's dropper back what nobody claimed, once.
--
-- Run by the box's close (any process, any number of times) after every
-- claim was credited. The entry is written also when nothing returns
-- (coins 0, no postings): it is the ledger's record that the box settled,
-- with the coins and number of the claims it sealed with. Idempotent by the
-- box's marker in the dropper's slot (no expiry).
--
-- KEYS[1]  wallet hash of the dropper               {wNN}
-- KEYS[2]  returned marker for the box               {wNN}
-- KEYS[3]  outbox stream of the dropper's shard      {wNN}
-- ARGV[1]  coins returned, integer >= 0
-- ARGV[2]  event id (derived from the box)
-- ARGV[3]  now, unix ms
-- ARGV[4..] outbox entry field/value pairs (event, ts, balance are appended)
--
-- Returns {status, balance}: "ok" or "replay" (the balance right after the return).

local done = redis.call('GET', KEYS[2])
if done then return {'replay', done} end
local coins = tonumber(ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'coins') or '0') + coins
local entry = {}
for i = 4, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[2]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[3]
entry[#entry + 1] = 'balance'; entry[#entry + 1] = tostring(balance)
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))
if coins > 0 then redis.call('HINCRBY', KEYS[1], 'coins', coins) end
redis.call('HSET', KEYS[1], 'pos', pos)
redis.call('SET', KEYS[2], tostring(balance))
return {'ok', tostring(balance)}
