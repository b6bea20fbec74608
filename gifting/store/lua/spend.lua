-- spend.lua: debit a sender for a gift, effect, highlighted comment or badge.
--
-- Idempotent by (sender, client message id): the result of every id is kept,
-- failures included, and returned again on a retry with the same payload.
-- Everything is checked before the first write (Redis does not roll back).
--
-- KEYS[1]  wallet hash of the sender            {wNN}
-- KEYS[2]  spend-result hash for this message   {wNN}
-- KEYS[3]  outbox stream of the sender's shard  {wNN}
-- KEYS[4]  combo hash (sender, stream)          {wNN}
-- KEYS[5]  the stream's gate in this shard       {wNN}  (untouched without a stream)
-- KEYS[6]  the sender's block by the creator      {wNN}  (read with a stream or a video)
-- KEYS[7]  the sender's block in the stream       {wNN}  (read only with a stream)
-- KEYS[8]  the deadline set of this shard          {wNN}  (a streak's end is scheduled here)
-- ARGV[1]  payload fingerprint
-- ARGV[2]  price: total coins, integer > 0
-- ARGV[3]  current month "YYYY-MM" (UTC), for the monthly budget
-- ARGV[4]  new event id (used only if the spend succeeds)
-- ARGV[5]  now, unix ms
-- ARGV[6]  seconds to keep the result of a refused spend (a debited spend's result
--          is kept until the persister made it durable: see below)
-- ARGV[7]  streak gift id, "" when the spend cannot combo
-- ARGV[8]  combo window, ms
-- ARGV[9]  count added to the streak
-- ARGV[10] the live flag read by the caller just before: "1" the stream is live,
--          "0" not live (refused), "-" live and no stream (a badge: no gate),
--          "r" live but the gift's receiver is not a current guest (refused
--          "unknown_receiver": read with the live flag, gifting/core/guests.py)
--          "v" a gift on a video (no stream, no gate; the creator's block KEYS[6] read)
-- ARGV[11..] outbox entry field/value pairs (balance, combo, event, ts, lifetime are
--          appended, and the sender's shown badge, field 'badge' of the wallet, when set)
--
-- Returns {status, balance, event, combo} as strings; status is "ok",
-- "replay:<stored status>", "conflict", or an error code. "ok" adds a fifth:
-- the sender's shown badge ("" for none), which rides on the room event, and a
-- sixth: the sender's lifetime coins spent after this debit (field 'lifetime'
-- of the wallet, every spend counted), which sets their gifter level. The
-- debit that moves it across a level's threshold is the only one that can,
-- so that debit's entry alone causes the level_up (gifting/core/levels.py).
--
-- A streakable gift schedules its streak's end in KEYS[8] (store/deadlines.py):
-- the member "streak|<json of the streak's state>" is due one combo window
-- (and 100 ms) after this gift; a gift continuing the same streak replaces the member (the
-- combo hash's 'due'), one of another gift leaves it to end on its own. So a
-- streak ends once, after its last gift, whichever hub debited it and whichever
-- process is alive then (store/streaks.py emits it).
--
-- The live flag comes from another slot one round trip earlier; the stream's
-- gate in this slot closes that gap. Ending a stream closes its gate in every
-- shard before the end is announced, so a spend that runs after that is
-- refused "stream_not_live" whatever flag it carries. The gate also counts
-- the spends debited to the stream in this shard ('debits'), so the end can
-- wait until the room has shown them all before "stream_ended".
--
-- A debited spend's result has no expiry here: PostgreSQL becomes its
-- long-term record (spend_ids), and only then does the persister shorten it
-- to a recent window (retire.lua). A refused spend moved no money and is kept
-- ARGV[6] seconds (gifting/core/idempotency.py says why).

local prev = redis.call('HMGET', KEYS[2], 'fp', 'status', 'balance', 'event', 'combo')
if prev[1] then
  if prev[1] ~= ARGV[1] then
    return {'conflict', '', '', ''}
  end
  return {'replay:' .. prev[2], prev[3], prev[4], prev[5]}
end

local price = tonumber(ARGV[2])
local w = redis.call('HMGET', KEYS[1], 'coins', 'budget', 'month', 'spent', 'lifetime')
local coins = tonumber(w[1] or '0')
local spent = 0
if w[3] == ARGV[3] then spent = tonumber(w[4] or '0') end

local status = 'ok'
if ARGV[10] == '0' or (ARGV[10] ~= '-' and redis.call('HEXISTS', KEYS[5], 'ended') == 1) then
  status = 'stream_not_live'
elseif ARGV[10] == 'r' then
  status = 'unknown_receiver'
elseif ARGV[10] == '1' and redis.call('EXISTS', KEYS[6], KEYS[7]) > 0 then
  -- A block is written in the sender's slot (store/moderation.py): it and
  -- this debit are ordered, so no spend is debited after a block answered.
  status = 'blocked'
elseif ARGV[10] == 'v' and redis.call('EXISTS', KEYS[6]) > 0 then
  status = 'blocked'  -- a video: the creator's blocks (in every stream) hold there too
elseif coins < price then
  status = 'insufficient_funds'
elseif w[2] and spent + price > tonumber(w[2]) then
  status = 'budget_exceeded'
end

local ttl = tonumber(ARGV[6])
if status ~= 'ok' then
  redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'status', status,
             'balance', tostring(coins), 'event', '', 'combo', '0')
  redis.call('EXPIRE', KEYS[2], ttl)
  return {status, tostring(coins), '', '0'}
end

-- All checks passed. The outbox append goes first: it is the write that can
-- fail (a wrong type, out of memory), and if it does nothing else is written.
local balance = coins - price
local lifetime = tonumber(w[5] or '0') + price
local combo = 0
local now = tonumber(ARGV[5])
local continued = nil  -- the deadline member of the streak this gift continues
if ARGV[7] ~= '' then
  local c = redis.call('HMGET', KEYS[4], 'gift', 'count', 'last', 'due')
  local add = tonumber(ARGV[9])
  if c[1] == ARGV[7] and now - tonumber(c[3]) <= tonumber(ARGV[8]) then
    combo = tonumber(c[2]) + add
    continued = c[4]
  else
    combo = add
  end
end

local entry = {}
for i = 11, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'event'; entry[#entry + 1] = ARGV[4]
entry[#entry + 1] = 'ts'; entry[#entry + 1] = ARGV[5]
entry[#entry + 1] = 'balance'; entry[#entry + 1] = tostring(balance)
entry[#entry + 1] = 'combo'; entry[#entry + 1] = tostring(combo)
entry[#entry + 1] = 'lifetime'; entry[#entry + 1] = tostring(lifetime)
local badge = redis.call('HGET', KEYS[1], 'badge') or ''
if badge ~= '' then entry[#entry + 1] = 'badge'; entry[#entry + 1] = badge end
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'coins', -price)
if ARGV[10] == '1' then redis.call('HINCRBY', KEYS[5], 'debits', 1) end
redis.call('HSET', KEYS[1], 'lifetime', tostring(lifetime))
redis.call('HSET', KEYS[1], 'month', ARGV[3], 'spent', tostring(spent + price), 'pos', pos)
if ARGV[7] ~= '' then
  local f = {}
  for i = 11, #ARGV - 1, 2 do f[ARGV[i]] = ARGV[i + 1] end
  local due = 'streak|' .. cjson.encode({
    u = f['user'], n = f['name'], s = f['stream'], g = ARGV[7], c = tostring(combo),
    t = ARGV[5], e = ARGV[4], l = tostring(lifetime), b = badge,
  })
  if continued then redis.call('ZREM', KEYS[8], continued) end
  -- Due one window after this gift, plus 100 ms for hubs' clocks that run a
  -- little apart (STREAK_END_GRACE_MS in store/streaks.py).
  redis.call('ZADD', KEYS[8], now + tonumber(ARGV[8]) + 100, due)
  redis.call('HSET', KEYS[4], 'gift', ARGV[7], 'count', tostring(combo), 'last', ARGV[5],
             'due', due)
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]) * 4)
end
redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'status', 'ok', 'balance', tostring(balance),
           'event', ARGV[4], 'combo', tostring(combo))

return {'ok', tostring(balance), ARGV[4], tostring(combo), badge, tostring(lifetime)}
