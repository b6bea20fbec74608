-- goals_set.lua: replace a room's goals at once (one slot: the room's).
--
-- A goal whose id and gift are unchanged keeps its progress (its marks at or
-- below it count as reached and are never announced again: emit.lua announces
-- a mark only when a spend's progress crosses it); any other goal starts at 0.
-- Atomic with emit.lua's progress updates: a spend counts toward the old goals
-- or the new ones, never lost between.
--
-- KEYS[1]  the room's goals hash (layout: emit.lua, "Goals")       {r:stream}
-- ARGV[1]  the goals as JSON (id, title, target, gift, steps), for readers
-- ARGV[2]  how many goals (n, 0..3)
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  goal i's id, gift ("": coins), marks ("s1,...,target")
--
-- Returns the progress of each goal (decimal strings), in order.

local old = {}
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
for i = 1, n do
  local f = redis.call('HMGET', KEYS[1], 'id:' .. i, 'gift:' .. i, 'p:' .. i)
  if f[1] then old[f[1]] = {f[2] or '', f[3] or '0'} end
end
redis.call('DEL', KEYS[1])
local m = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'defs', ARGV[1], 'n', m)
local out = {}
for i = 1, m do
  local id, gift, marks = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  local p = '0'
  local prior = old[id]
  if prior and prior[1] == gift then p = prior[2] end
  redis.call('HSET', KEYS[1], 'id:' .. i, id, 'gift:' .. i, gift, 'marks:' .. i, marks,
    'p:' .. i, p)
  out[#out + 1] = p
end
return out
