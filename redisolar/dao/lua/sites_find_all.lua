-- sites_find_all.lua: every site, in id order, in one round trip.
--
-- For a standalone server only: the site hash keys are built here from ARGV and not declared in KEYS,
-- which Redis Cluster (and a future server enforcing declared keys) does not allow.
--
-- KEYS[1]    sites:ids (sorted set, score = id)
-- ARGV[1]    site hash key before the id   ARGV[2] site hash key after the id
-- ARGV[3..]  the hash fields to read, in order
-- Returns one array of field values (HMGET order) per existing site, by ascending id.

local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id .. ARGV[2]
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = redis.call('HMGET', key, unpack(fields))
  end
end
return out
