-- box_claim.lua: record one viewer's claim on a treasure box, in claim order.
--
-- The claim order decides the share: the i-th claim of a box of N coins for
-- K winners gets floor(N / K), plus one coin when i <= N % K (shares differ
-- by at most one coin; K claims take exactly N). A viewer claims a box once:
-- the same message id again gets the same answer ("replay"), another id
-- "already_claimed". Claims are taken from opens_at until closes_at by
-- Redis's own clock, while the box is "open" (the close seals it first), and
-- at most K of them. Money moves later, in the claimer's slot
-- (box_credit.lua), idempotent by (box, claimer); the close credits every
-- claim recorded here again, so a claim whose process died is paid once.
--
-- KEYS[1]  box hash                                  {r:stream}
-- KEYS[2]  box claims hash: claimer -> JSON [order, share, message id, name]  {r:stream}
-- ARGV[1]  claimer id
-- ARGV[2]  the claimer's message id
-- ARGV[3]  claimer display name
--
-- Returns {status, share, order, dropper}: "ok", "replay", or a refusal:
-- "unknown_box", "box_not_open", "box_closed", "already_claimed".

local b = redis.call('HMGET', KEYS[1], 'coins', 'winners', 'opens_at', 'closes_at', 'state',
                     'claims', 'dropper', 'claimed')
if not b[1] then return {'unknown_box', '0', '0', ''} end
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then
  local c = cjson.decode(prev)
  if c[3] == ARGV[2] then return {'replay', tostring(c[2]), tostring(c[1]), b[7]} end
  return {'already_claimed', tostring(c[2]), tostring(c[1]), b[7]}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local coins, winners, claims = tonumber(b[1]), tonumber(b[2]), tonumber(b[6])
if b[5] == 'open' and now < tonumber(b[3]) then return {'box_not_open', '0', '0', b[7]} end
if b[5] ~= 'open' or now >= tonumber(b[4]) or claims >= winners then
  return {'box_closed', '0', '0', b[7]}
end
local order = claims + 1
local share = math.floor(coins / winners)
if order <= coins % winners then share = share + 1 end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({order, share, ARGV[2], ARGV[3]}))
redis.call('HSET', KEYS[1], 'claims', tostring(order),
           'claimed', tostring(tonumber(b[8]) + share))
return {'ok', tostring(share), tostring(order), b[7]}
