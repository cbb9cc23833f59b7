-- sites_delete.lua: delete one site (its hash and every index entry) atomically.
--
-- Same guard as sites_upsert.lua: the caller passes the index set keys of the values it believes are
-- stored; when the belief is wrong nothing is deleted and the stored values come back for a retry.
--
-- KEYS[1]    site hash                 KEYS[2] sites:ids       KEYS[3] sites:geo
-- KEYS[4]    capacity leaderboard      KEYS[5..7] state, city, postal code sets of the believed values
-- KEYS[8]    running sum of the capacity leaderboard (see zset_set.lua: kept only while known)
-- ARGV[1]    "1" if the caller believes the site exists, "0" if not
-- ARGV[2..4] state, city, postal code the caller believes are stored ("" when it believes none)
-- ARGV[5]    site id                   ARGV[6] leaderboard member ("site:ID")
-- Returns {"OK", existed ("1"/"0")} | {"STALE", exists, state, city, postal}

local site = KEYS[1]
local id = ARGV[5]
local exists = redis.call('EXISTS', site) == 1
local stored = redis.call('HMGET', site, 'state', 'city', 'postal_code')
for i = 1, 3 do
  stored[i] = stored[i] or ''
end
local believed = ARGV[1] == '1'
if exists ~= believed or (exists and (stored[1] ~= ARGV[2] or stored[2] ~= ARGV[3] or stored[3] ~= ARGV[4])) then
  return {'STALE', exists and '1' or '0', stored[1], stored[2], stored[3]}
end

if exists then
  for i = 5, 7 do
    redis.call('SREM', KEYS[i], id)
  end
  redis.call('DEL', site)
end
-- Entries without a hash are left-overs: remove them either way.
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local sum_known = redis.call('EXISTS', KEYS[8]) == 1
local before = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[6]))
if before then
  redis.call('ZREM', KEYS[4], ARGV[6])
  if redis.call('ZCARD', KEYS[4]) == 0 then
    redis.call('DEL', KEYS[8])
  elseif sum_known then
    redis.call('INCRBYFLOAT', KEYS[8], string.format('%.17g', -before))
  end
end
return {'OK', exists and '1' or '0'}
