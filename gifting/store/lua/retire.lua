-- retire.lua: shorten the expiry of idempotency records PostgreSQL now holds.
--
-- Sets each key's expiry to at most ARGV[1] seconds: a key without expiry, or
-- expiring later, gets ARGV[1]; one expiring sooner keeps its expiry; a
-- missing key is skipped. (EXPIRE ... LT says the same, from Redis 7 only.)
-- Writes nothing but expiries, so it is safe to repeat.
--
-- KEYS[1..]  records of one hash slot: spend results and credited markers of
--            one wallet shard {wNN}, or emitted markers of one room {r:stream}
-- ARGV[1]    seconds to keep them from now
--
-- Returns {shortened}: how many keys' expiry it shortened, as a string.

local keep = tonumber(ARGV[1])
local shortened = 0
for i = 1, #KEYS do
  local ttl = redis.call('TTL', KEYS[i])
  if ttl == -1 or ttl > keep then
    redis.call('EXPIRE', KEYS[i], keep)
    shortened = shortened + 1
  end
end
return {tostring(shortened)}
