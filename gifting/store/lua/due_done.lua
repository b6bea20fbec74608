-- due_done.lua: finish a taken deadline, unless it was scheduled anew since.
--
-- KEYS[1]  the deadline set
-- ARGV[1]  the member
-- ARGV[2]  the score it was leased with (due_take.lua)
-- ARGV[3]  "" to remove it, or a due time (unix ms) to run it again then
--
-- Returns {"1"} when the member was still the caller's (removed or moved), 0 when
-- someone scheduled it anew meanwhile ({"0"}: it is left as they set it).

local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return {'0'} end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
end
return {'1'}
