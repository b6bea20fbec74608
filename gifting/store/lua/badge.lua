-- badge.lua: add a bought badge to the user's badges and show the best one owned.
--
-- Idempotent (a set add and a recomputation): a retried purchase, or two
-- purchases racing, always leave the dearest owned badge shown, never a
-- cheaper one bought later. Display only: the money moved in spend.lua.
--
-- KEYS[1]  wallet hash of the user (field 'badge': the badge shown)   {wNN}
-- KEYS[2]  set of the badges the user owns                             {wNN}
-- ARGV[1]  the badge bought
-- ARGV[2..] the catalog's badge ids, the one to show first (dearest first)
--
-- Returns {the badge shown now} ("" if none of the owned is in the catalog).
-- A wallet shown a badge before the owned set existed keeps it: it is added
-- to the set first.

local shown = redis.call('HGET', KEYS[1], 'badge')
if shown then redis.call('SADD', KEYS[2], shown) end
redis.call('SADD', KEYS[2], ARGV[1])
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], 'badge', ARGV[i])
    return {ARGV[i]}
  end
end
return {''}
