-- box_settle.lua: mark a sealed treasure box settled (every claim credited, the rest
-- returned, box_closed emitted) and let its state expire.
--
-- KEYS[1]  box hash                                  {r:stream}
-- KEYS[2]  box claims hash                           {r:stream}
-- ARGV[1]  seconds the settled state is kept
--
-- Returns {status}: "ok", or "missing" / "open" (not sealed: nothing written).

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'open' then return {'open'} end
redis.call('HSET', KEYS[1], 'state', 'settled')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return {'ok'}
