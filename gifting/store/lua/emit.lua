-- emit.lua: append one event to a room, once, and publish it to every hub.
--
-- On a Redis Cluster the channel hashes to the room's slot ({r:stream}) and
-- is published with SPUBLISH: the event reaches the master of that slot (the
-- node running this script) and the hubs subscribed there, not every node.
--
-- Assigns the room's next seq, appends the event to the capped history
-- stream (its entry id is the cursor), updates the room's totals and top
-- gifters for a spend, and publishes "<seq>|<cursor>|<body>" on the room
-- channel. Idempotent by the marker key: the hub (fast path) and the
-- persister (repair) may both emit the same ledger event; only the first
-- counts.
--
-- KEYS[1]  marker key for this event (set once emitted)   {r:stream}
-- KEYS[2]  seq counter                                     {r:stream}
-- KEYS[3]  history stream                                  {r:stream}
-- KEYS[4]  totals hash (coins, gifts, spends shown)        {r:stream}
-- KEYS[5]  top gifters sorted set                          {r:stream}
-- KEYS[6]  display names hash                              {r:stream}
-- ARGV[1]  event body, JSON object without seq/cursor
-- ARGV[2]  history max length (approximate)
-- ARGV[3]  history min id (ms): older entries may be trimmed
-- ARGV[4]  marker ttl, seconds ("0": no marker, always emit; "-1": a marker without
--          expiry, for a spend: the persister shortens it once durable, retire.lua)
-- ARGV[5]  pub/sub channel
-- ARGV[6]  sender id ("" when the event is not a spend; a spend is counted shown)
-- ARGV[7]  sender display name
-- ARGV[8]  coins of the spend (0: no totals update)
-- ARGV[9]  gifts to count (the gift count, 0 for other spends)
-- ARGV[10] totals field of the item ("gift:<id>", or "")
-- ARGV[11] not after, unix ms ("": no deadline): past it (Redis's clock) the event is
--          refused "stale" unless it was emitted already (see credit.lua)
-- ARGV[12] "PUBLISH" (a single Redis) or "SPUBLISH" (a cluster: sharded pub/sub)
-- ARGV[13] fingerprint of the payload, kept with the marker ("" or absent: none);
--          a later emission of the same event id with another one is a conflict
--
-- KEYS[7..] and ARGV[14..] are reserved for the state updated with a spend's
-- first emission (goals, hype): each section below documents its own.
--
-- KEYS[7]  the room's goals hash (gifting/store/goals.py)  {r:stream}
-- ARGV[14] the spend's event id ("" when the event is not a spend: no goal counts it)
-- ARGV[15] the spend's ts (unix ms, decimal)
-- ARGV[16] the stream id as a JSON string (quoted, as the room event bodies have it)
-- KEYS[8]  the room's hype hash (gifting/store/hype.py)    {r:stream}
-- KEYS[9]  the room's hype window sorted set              {r:stream}
-- ARGV[17] the catalog's hype "gifters,coins,window_ms,level1,..." ("": no hype)
-- ARGV[18] the hype instance this event ends ("": none): the event (its
--          hype_ended) is appended only if that hype still runs and its expiry
--          has passed (Redis's clock); else {"gone"} or {"early", expiry}, nothing written
--
-- Events derived from a spend (a goal step reached, a hype level) are appended
-- by append() in this same script, after the spend's own event: they exist
-- exactly when the spend was emitted, once, whichever hub or persister ran it.
--
-- Returns {status, seq, cursor}: "ok", "replay" (or "conflict": another
-- payload under the same event id) with the first emission's, or "stale"
-- (nothing written).

local ttl = tonumber(ARGV[4])
local fp = ARGV[13] or ''
if ttl ~= 0 then
  local prior = redis.call('GET', KEYS[1])
  if prior then
    -- "<seq>|<cursor>" or "<seq>|<cursor>|<fingerprint>"
    local sep = string.find(prior, '|', 1, true)
    local rest = string.sub(prior, sep + 1)
    local sep2 = string.find(rest, '|', 1, true)
    local cursor, kept = rest, ''
    if sep2 then
      cursor, kept = string.sub(rest, 1, sep2 - 1), string.sub(rest, sep2 + 1)
    end
    local status = 'replay'
    if fp ~= '' and kept ~= fp then status = 'conflict' end
    return {status, string.sub(prior, 1, sep - 1), cursor}
  end
end
if ARGV[11] and ARGV[11] ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[11]) then
    return {'stale', '0', ''}
  end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Integers as JSON/decimal text whatever their size (tostring gives 14 digits).
local function int(n) return string.format('%d', n) end

local hype_end = ARGV[18] or ''
if hype_end ~= '' then
  local h = redis.call('HMGET', KEYS[8], 'id', 'expires')
  if h[1] ~= hype_end then return {'gone', '0', ''} end
  if tonumber(h[2]) > now_ms() then return {'early', h[2], ''} end
  -- The hype ends here; a new one needs a new window's momentum.
  redis.call('DEL', KEYS[8], KEYS[9])
end

local publish = 'PUBLISH'
if ARGV[12] == 'SPUBLISH' then publish = 'SPUBLISH' end

-- Append one event body (a JSON object without seq/cursor) to the room: the
-- next seq, the history entry (its id makes the cursor), the publication.
local function append(body)
  local s = redis.call('INCR', KEYS[2])
  local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 's', s, 'd', body)
  local c = id .. '_' .. s
  redis.call(publish, ARGV[5], s .. '|' .. c .. '|' .. body)
  return s, c
end

redis.call('XTRIM', KEYS[3], 'MINID', '~', ARGV[3])
local seq, cursor = append(ARGV[1])

local coins = tonumber(ARGV[8])
-- Every spend shown counts (the stream's end waits for the debited ones), also one
-- that adds no coins: a treasure box, a creator's own effect or highlight.
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[4], 'spends', 1) end
if coins > 0 then
  redis.call('HINCRBY', KEYS[4], 'coins', coins)
  if tonumber(ARGV[9]) > 0 then redis.call('HINCRBY', KEYS[4], 'gifts', tonumber(ARGV[9])) end
  if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[10], coins) end
  redis.call('ZINCRBY', KEYS[5], coins, ARGV[6])
  redis.call('HSET', KEYS[6], ARGV[6], ARGV[7])
end
if ttl ~= 0 then
  local marker = seq .. '|' .. cursor
  if fp ~= '' then marker = marker .. '|' .. fp end
  if ttl > 0 then
    redis.call('SET', KEYS[1], marker, 'EX', ttl)
  else
    redis.call('SET', KEYS[1], marker)
  end
end

-- Derived events (goals, hype) go here, after the spend's event and its marker.

-- Goals: the goals hash holds n, and for i = 1..n id:<i>, gift:<i> ("": the goal
-- counts coins, else that gift's count), marks:<i> (the steps then the target,
-- decimals joined by ","), p:<i> (progress). Only a spend someone is credited
-- for counts (coins > 0: the host or a guest; not the platform's, not a box). Each mark the spend's progress crossed
-- (before < mark <= after) is announced once by a goal_reached, built like
-- gifting/core/goals.py goal_reached_event (the target's step is null).
local spend_id = ARGV[14] or ''
if coins > 0 and spend_id ~= '' then
  local n = tonumber(redis.call('HGET', KEYS[7], 'n') or '0')
  for i = 1, n do
    local g = redis.call('HMGET', KEYS[7], 'id:' .. i, 'gift:' .. i, 'marks:' .. i)
    local add = 0
    if g[2] == '' then
      add = coins
    elseif ARGV[10] == 'gift:' .. g[2] then
      add = tonumber(ARGV[9])
    end
    if add > 0 then
      local after = redis.call('HINCRBY', KEYS[7], 'p:' .. i, add)
      local before = after - add
      local marks = {}
      for mark in string.gmatch(g[3], '[0-9]+') do marks[#marks + 1] = mark end
      for j, mark in ipairs(marks) do
        local m = tonumber(mark)
        if before < m and m <= after then
          local tag, step = mark, mark
          if j == #marks then tag, step = 't', 'null' end
          append('{"kind":"goal_reached","stream":' .. ARGV[16] .. ',"event":"r'
            .. string.sub(spend_id, 2) .. '.' .. tag .. '.' .. g[1] .. '","ts":' .. ARGV[15]
            .. ',"goal":"' .. g[1] .. '","step":' .. step .. '}')
        end
      end
    end
  end
end

-- Hype (gifting/core/hype.py states the rules). With no hype running, the hype
-- hash holds the window's aggregates (total, senders, s:<sender> coins) and the
-- window set holds "<coins> <spend id> <sender>" by ms. A running hype holds
-- only id, level, progress, expires: its spends cost one read and one write
-- (no window to keep), and its end (here, or by the hype|<stream> deadline
-- above) deletes both keys, so the next hype needs a new window's momentum.
local hype_cfg = ARGV[17] or ''
if coins > 0 and spend_id ~= '' and hype_cfg ~= '' then
  local cfg = {}
  for n in string.gmatch(hype_cfg, '[0-9]+') do cfg[#cfg + 1] = tonumber(n) end
  local gifters, need, window, top = cfg[1], cfg[2], cfg[3], #cfg - 3
  local now = now_ms()
  local sender = ARGV[6]
  local h = redis.call('HMGET', KEYS[8], 'id', 'level', 'progress', 'expires')
  local id, level, progress = h[1], tonumber(h[2] or '0'), tonumber(h[3] or '0')
  if id and tonumber(h[4]) <= now then
    append('{"kind":"hype_ended","stream":' .. ARGV[16] .. ',"event":"' .. id .. '.end","ts":'
      .. int(now) .. ',"level":' .. int(level) .. '}')
    redis.call('DEL', KEYS[8], KEYS[9])
    id = nil
  end
  local expires = now + window
  local function announce(l, p)
    append('{"kind":"hype","stream":' .. ARGV[16] .. ',"event":"' .. id .. '.' .. l .. '","ts":'
      .. int(now) .. ',"level":' .. l .. ',"progress":' .. int(p) .. ',"target":'
      .. int(cfg[3 + l]) .. ',"expires_at":' .. int(expires) .. '}')
  end
  if id then
    progress = progress + coins
  else
    local since = '(' .. int(now - window)
    local old = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', since)
    for _, m in ipairs(old) do
      local c, s = string.match(m, '^(%d+) %S+ (.+)$')
      if redis.call('HINCRBY', KEYS[8], 's:' .. s, -tonumber(c)) <= 0 then
        redis.call('HDEL', KEYS[8], 's:' .. s)
        redis.call('HINCRBY', KEYS[8], 'senders', -1)
      end
      redis.call('HINCRBY', KEYS[8], 'total', -tonumber(c))
    end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', since) end
    redis.call('ZADD', KEYS[9], now, int(coins) .. ' ' .. spend_id .. ' ' .. sender)
    if redis.call('HINCRBY', KEYS[8], 's:' .. sender, coins) == coins then
      redis.call('HINCRBY', KEYS[8], 'senders', 1)
    end
    local total = redis.call('HINCRBY', KEYS[8], 'total', coins)
    local senders = tonumber(redis.call('HGET', KEYS[8], 'senders') or '0')
    if senders >= gifters and total >= need then
      -- A hype starts: the window's aggregates go, the hype's state takes the hash.
      redis.call('DEL', KEYS[8], KEYS[9])
      id, level, progress = 'h' .. string.sub(spend_id, 2), 1, total
      announce(1, progress)
    else
      -- Idle rooms let their window go.
      redis.call('PEXPIRE', KEYS[8], window + 86400000)
      redis.call('PEXPIRE', KEYS[9], window + 86400000)
    end
  end
  if id then
    while level < top and progress >= cfg[3 + level] do
      progress = progress - cfg[3 + level]
      level = level + 1
      announce(level, progress)
    end
    -- No expiry while it runs: its end (deadline or next spend) deletes it.
    redis.call('HSET', KEYS[8], 'id', id, 'level', level, 'progress', int(progress),
      'expires', int(expires))
  end
end

return {'ok', tostring(seq), cursor}
