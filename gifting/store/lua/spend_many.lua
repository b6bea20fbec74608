-- spend_many.lua: debit N spends of senders in one wallet shard, in one call.
--
-- Each spend is exactly spend.lua (the function below is spend.lua's code,
-- byte for byte: tests/store/test_spend_many.py checks it), run in order,
-- each under its own pcall: its idempotency record, live flag and gate,
-- blocks, balance and budget are checked before its first write, as alone.
-- One spend's refusal or error does not touch the others. An error (a
-- wrong-typed key, out of memory) inside a spend is caught: everything in
-- that spend is checked before its outbox append, the first write, so a
-- failed spend wrote nothing and answers "error:<message>"; the spends
-- before it are done and those after it still run. (Redis does not roll back
-- a script: what would leave half a spend is an error between its writes,
-- which needs its own wallet hash to change type in between, impossible
-- within one script.) Only a failure of the whole call (connection lost,
-- script killed) leaves the outcome of every spend unknown: each is
-- idempotent by its message id, so a retry is safe.
--
-- KEYS[1]       the outbox stream of the shard                        {wNN}
-- KEYS[1+6(i-1)+1..6] spend i's keys: spend.lua's KEYS[1], [2], [4], [5], [6], [7]
--               (all in the same shard {wNN})
-- ARGV[1]       N, the number of spends
-- then, for each spend: its argument count A, then its A arguments (spend.lua's ARGV)
--
-- Returns 5 strings per spend, in order: spend.lua's reply padded to five
-- ({status, balance, event, combo, badge}), or {"error:<message>", "", "", "", ""}.

local function spend(KEYS, ARGV)
local prev = redis.call('HMGET', KEYS[2], 'fp', 'status', 'balance', 'event', 'combo')
if prev[1] then
  if prev[1] ~= ARGV[1] then
    return {'conflict', '', '', ''}
  end
  return {'replay:' .. prev[2], prev[3], prev[4], prev[5]}
end

local price = tonumber(ARGV[2])
local w = redis.call('HMGET', KEYS[1], 'coins', 'budget', 'month', 'spent')
local coins = tonumber(w[1] or '0')
local spent = 0
if w[3] == ARGV[3] then spent = tonumber(w[4] or '0') end

local status = 'ok'
if ARGV[10] == '0' or (ARGV[10] == '1' and redis.call('HEXISTS', KEYS[5], 'ended') == 1) then
  status = 'stream_not_live'
elseif ARGV[10] == '1' and redis.call('EXISTS', KEYS[6], KEYS[7]) > 0 then
  -- A block is written in the sender's slot (store/moderation.py): it and
  -- this debit are ordered, so no spend is debited after a block answered.
  status = 'blocked'
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
local combo = 0
local now = tonumber(ARGV[5])
if ARGV[7] ~= '' then
  local c = redis.call('HMGET', KEYS[4], 'gift', 'count', 'last')
  local add = tonumber(ARGV[9])
  if c[1] == ARGV[7] and now - tonumber(c[3]) <= tonumber(ARGV[8]) then
    combo = tonumber(c[2]) + add
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
local badge = redis.call('HGET', KEYS[1], 'badge') or ''
if badge ~= '' then entry[#entry + 1] = 'badge'; entry[#entry + 1] = badge end
local pos = redis.call('XADD', KEYS[3], '*', unpack(entry))

redis.call('HINCRBY', KEYS[1], 'coins', -price)
if ARGV[10] == '1' then redis.call('HINCRBY', KEYS[5], 'debits', 1) end
redis.call('HSET', KEYS[1], 'month', ARGV[3], 'spent', tostring(spent + price), 'pos', pos)
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[4], 'gift', ARGV[7], 'count', tostring(combo), 'last', ARGV[5])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]) * 4)
end
redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'status', 'ok', 'balance', tostring(balance),
           'event', ARGV[4], 'combo', tostring(combo))

return {'ok', tostring(balance), ARGV[4], tostring(combo), badge}
end

local out = {}
local n = tonumber(ARGV[1])
local a = 2
for i = 1, n do
  local k = 1 + 6 * (i - 1)
  local keys = {KEYS[k + 1], KEYS[k + 2], KEYS[1], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6]}
  local count = tonumber(ARGV[a])
  local args = {}
  for j = 1, count do args[j] = ARGV[a + j] end
  a = a + count + 1
  local ok, r = pcall(spend, keys, args)
  if not ok then
    local msg = r
    if type(r) == 'table' then msg = r.err or r['err'] end
    r = {'error:' .. tostring(msg), '', '', '', ''}
  end
  for j = 1, 5 do out[#out + 1] = r[j] or '' end
end
return out
