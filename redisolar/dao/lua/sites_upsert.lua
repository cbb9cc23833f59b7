-- sites_upsert.lua: write one site (its hash and every index entry) atomically.
--
-- The index sets a site is in depend on its stored state, city and postal code, and their key names
-- are built in Python (KeyManager). The caller passes the keys of the values it believes are stored;
-- this script checks that belief (a compare-and-set guard) and, when it is wrong, writes nothing and
-- returns the stored values so that the caller can retry with the right keys. Every key is declared.
--
-- KEYS[1]     site hash                      KEYS[2]  sites:ids (sorted set, score = id)
-- KEYS[3]     sites:geo (geo set)            KEYS[4]  capacity leaderboard (sorted set)
-- KEYS[5..7]  state, city, postal code sets of the new values
-- KEYS[8..10] state, city, postal code sets of the values the caller believes are stored
-- KEYS[11]    running sum of the capacity leaderboard (see zset_set.lua: kept only while known)
-- ARGV[1]     mode: "upsert", "create" (only if absent) or "update" (only if present)
-- ARGV[2]     "1": a failed guard is an error (pipelined calls cannot retry); "0": return STALE
-- ARGV[3]     "1" if the caller believes the site exists, "0" if not
-- ARGV[4..6]  state, city, postal code the caller believes are stored ("" when it believes none)
-- ARGV[7]     site id          ARGV[8]  leaderboard member ("site:ID")      ARGV[9] capacity
-- ARGV[10]    longitude or ""  ARGV[11] latitude or ""
-- ARGV[12..]  hash field, value pairs
-- Returns {"OK", existed ("1"/"0")} | {"EXISTS"} | {"MISSING"} | {"STALE", exists, state, city, postal}

local site = KEYS[1]
local id = ARGV[7]
local exists = redis.call('EXISTS', site) == 1
if exists and ARGV[1] == 'create' then
  return {'EXISTS'}
end
if not exists and ARGV[1] == 'update' then
  return {'MISSING'}
end

local stored = redis.call('HMGET', site, 'state', 'city', 'postal_code')
for i = 1, 3 do
  stored[i] = stored[i] or ''
end
local believed = ARGV[3] == '1'
if exists ~= believed or (exists and (stored[1] ~= ARGV[4] or stored[2] ~= ARGV[5] or stored[3] ~= ARGV[6])) then
  if ARGV[2] == '1' then
    return redis.error_reply('STALE the site changed while it was being written; retry')
  end
  return {'STALE', exists and '1' or '0', stored[1], stored[2], stored[3]}
end

-- GEOADD is the only write that can fail on input (the caller validates coordinates): do it first.
if ARGV[10] ~= '' then
  redis.call('GEOADD', KEYS[3], ARGV[10], ARGV[11], id)
else
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', site, 'lat', 'lng', 'location')
end
if exists then
  for i = 8, 10 do
    redis.call('SREM', KEYS[i], id)
  end
end
for i = 5, 7 do
  redis.call('SADD', KEYS[i], id)
end
redis.call('HSET', site, unpack(ARGV, 12))
redis.call('ZADD', KEYS[2], id, id)
local sum_known = redis.call('EXISTS', KEYS[11]) == 1 or redis.call('ZCARD', KEYS[4]) == 0
local before = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[8])) or 0
redis.call('ZADD', KEYS[4], ARGV[9], ARGV[8])
if sum_known then
  redis.call('INCRBYFLOAT', KEYS[11], string.format('%.17g', tonumber(ARGV[9]) - before))
end
return {'OK', exists and '1' or '0'}
