-- due_take.lua: take the due deadlines of one set, leased to the caller.
--
-- A deadline is a member of a sorted set scored by its due time (unix ms).
-- Taking moves each due member's score to now + lease, so no other process
-- takes it while the caller runs it; a caller that dies leaves it to come due
-- again when the lease runs out. The caller removes it once done
-- (due_done.lua), unless it was scheduled anew meanwhile (its score moved).
--
-- KEYS[1]  the deadline set
-- ARGV[1]  now, unix ms
-- ARGV[2]  at most this many
-- ARGV[3]  lease, ms
--
-- Returns {member, leased score, member, leased score, ...}.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local leased = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], leased, member)
  out[#out + 1] = member
  out[#out + 1] = tostring(leased)
end
return out
