-- snapshot.lua: a room's state at one seq, read at once (one slot: the room's).
--
-- What an overlay shows before the live events: the stream (title, creator,
-- live, goal), the totals, the top gifters with their names, and the seq and
-- cursor of the room's latest event. One script, so no event can land
-- between two of the reads: the events after the returned seq are exactly
-- the ones the snapshot does not cover (emit.lua writes the seq, the history
-- and the totals of an event in one script too). Reads only.
--
-- KEYS[1]  stream hash (creator, creator_name, title, live, goal_target, goal_gift,
--          guests)                                          {r:stream}
-- KEYS[2]  totals hash                                     {r:stream}
-- KEYS[3]  top gifters sorted set                          {r:stream}
-- KEYS[4]  display names hash                              {r:stream}
-- KEYS[5]  seq counter                                     {r:stream}
-- KEYS[6]  history stream                                  {r:stream}
-- KEYS[7]  goals hash (gifting/store/goals.py)              {r:stream}
-- KEYS[8]  hype hash (gifting/store/hype.py)                {r:stream}
-- ARGV[1]  how many top gifters
--
-- Returns {seq, cursor ("" when the history is empty), stream fields (flat
-- name, value list), totals (flat), top (flat user, coins, name triples), goals
-- (flat, the goals hash), the running hype's id, level, progress, expires}.

local seq = redis.call('GET', KEYS[5]) or '0'
local cursor = ''
local last = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)
if last[1] then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 's' then cursor = last[1][1] .. '_' .. fields[i + 1] end
  end
end

local stream = redis.call('HMGET', KEYS[1], 'creator', 'creator_name', 'title', 'live',
  'goal_target', 'goal_gift', 'guests')
local stream_flat = {}
local names = {'creator', 'creator_name', 'title', 'live', 'goal_target', 'goal_gift', 'guests'}
for i = 1, #names do
  stream_flat[#stream_flat + 1] = names[i]
  stream_flat[#stream_flat + 1] = stream[i] or ''
end

local top = redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local top_flat = {}
for i = 1, #top, 2 do
  local user = top[i]
  local name = redis.call('HGET', KEYS[4], user)
  top_flat[#top_flat + 1] = user
  top_flat[#top_flat + 1] = top[i + 1]
  top_flat[#top_flat + 1] = name or user
end

local goals = {}
if KEYS[7] then goals = redis.call('HGETALL', KEYS[7]) end
local hype = {}
if KEYS[8] then hype = redis.call('HMGET', KEYS[8], 'id', 'level', 'progress', 'expires') end
return {seq, cursor, stream_flat, redis.call('HGETALL', KEYS[2]), top_flat, goals, hype}
