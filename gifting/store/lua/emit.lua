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

return {'ok', tostring(seq), cursor}
