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
-- the member "streak|<combo hash key>" is due one combo window (and 100 ms)
-- after this gift, and the combo hash keeps the streak's state (gift, count,
-- last, event, lifetime, badge, name); a gift continuing the streak moves the
-- member's time. A gift starting a new streak before the last one was ended
-- leaves that one a member of its own, "streak|<json of its state>", to end on
-- its own. So a streak ends once, after its last gift, whichever hub debited it
-- and whichever process is alive then (store/streaks.py emits it).
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
local continued = false  -- this gift continues the streak in the combo hash
local prev = nil  -- else: the combo hash's streak (gift, count, last), if any
if ARGV[7] ~= '' then
  local c = redis.call('HMGET', KEYS[4], 'gift', 'count', 'last')
  local add = tonumber(ARGV[9])
  if c[1] == ARGV[7] and now - tonumber(c[3]) <= tonumber(ARGV[8]) then
    combo = tonumber(c[2]) + add
    continued = true
  else
    combo = add
    if c[1] then prev = c end
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
  local window = tonumber(ARGV[8])
  local member = 'streak|' .. KEYS[4]
  if prev and redis.call('ZSCORE', KEYS[8], member) then
    -- This gift starts a new streak while the one in the combo hash has not been
    -- ended yet (another gift, or its end not run yet): that one ends on its own,
    -- from a copy of its state (the rare path; store/streaks.py reads either).
    local p = redis.call('HMGET', KEYS[4], 'event', 'lifetime', 'badge', 'name')
    local user, stream = string.match(KEYS[4], ':combo:([^:]+):([^:]*)$')
    redis.call('ZADD', KEYS[8], tonumber(prev[3]) + window + 100, 'streak|' .. cjson.encode({
      u = user, n = p[4] or user, s = stream, g = prev[1], c = prev[2], t = prev[3],
      e = p[1] or '', l = p[2] or '0', b = p[3] or '',
    }))
  end
  -- The streak's end: due one window after this gift, plus 100 ms for hubs'
  -- clocks that run a little apart (STREAK_END_GRACE_MS in store/streaks.py). The
  -- member names the combo hash; a gift continuing the streak only moves its time.
  redis.call('ZADD', KEYS[8], now + window + 100, member)
  redis.call('HSET', KEYS[4], 'gift', ARGV[7], 'count', tostring(combo), 'last', ARGV[5],
             'event', ARGV[4], 'lifetime', tostring(lifetime), 'badge', badge)
  if not continued then
    local name = ''
    for i = 11, #ARGV - 1, 2 do if ARGV[i] == 'name' then name = ARGV[i + 1] end end
    redis.call('HSET', KEYS[4], 'name', name)
  end
  redis.call('PEXPIRE', KEYS[4], window * 4)
end
redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'status', 'ok', 'balance', tostring(balance),
           'event', ARGV[4], 'combo', tostring(combo))

return {'ok', tostring(balance), ARGV[4], tostring(combo), badge, tostring(lifetime)}
