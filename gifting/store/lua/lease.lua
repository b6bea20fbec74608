-- lease.lua: renew or release a lease held by its owner (compare-and-set).
--
-- Leases are strings holding their owner's name with a TTL (taken with
-- SET NX PX by the caller). Only the owner may renew or release one: a lease
-- that expired and was taken by another process is left alone.
--
-- KEYS[1]  the lease                             (the leased thing's slot)
-- ARGV[1]  the owner's name
-- ARGV[2]  "renew" or "release"
-- ARGV[3]  new time to live, ms (renew)
--
-- Returns 1 if the owner held the lease (renewed or released), else 0.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
