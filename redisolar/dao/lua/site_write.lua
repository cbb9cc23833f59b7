-- site_write.lua: write or delete one site's hash (one slot: {site:ID}); the fleet-wide index follows
-- in a second call, sites_index.lua (slot {sites}), with the same version.
--
-- The hash keeps a version (field 'ver', "0" for hashes written before versions existed). A write is a
-- compare-and-set on it: the caller passes the version it believes is stored and the new one (greater),
-- so the caller knows the version before the call and can send the index call in the same round trip.
--
-- KEYS[1]    the site hash
-- ARGV[1]    mode: "upsert", "create" (only if absent), "update" (only if present) or "remove"
-- ARGV[2]    "1": a failed guard is an error (pipelined calls cannot retry); "0": return STALE
-- ARGV[3]    the version the caller believes is stored ("" when it believes there is no hash)
-- ARGV[4]    the new version
-- ARGV[5..]  hash field, value pairs (not for "remove"); without 'lat' the coordinate fields go
-- Returns {"OK", existed ("1"/"0")} | {"EXISTS"} | {"MISSING"} | {"STALE", stored version or ""}

local site = KEYS[1]
local exists = redis.call('EXISTS', site) == 1
if exists and ARGV[1] == 'create' then
  return {'EXISTS'}
end
if not exists and (ARGV[1] == 'update' or ARGV[1] == 'remove') then
  return {'MISSING'}
end
local stored = ''
if exists then
  stored = redis.call('HGET', site, 'ver') or '0'
end
if stored ~= ARGV[3] then
  if ARGV[2] == '1' then
    return redis.error_reply('STALE the site changed while it was being written; retry')
  end
  return {'STALE', stored}
end

if ARGV[1] == 'remove' then
  redis.call('DEL', site)
  return {'OK', '1'}
end
local has_lat = false
for i = 5, #ARGV, 2 do
  if ARGV[i] == 'lat' then has_lat = true end
end
if not has_lat then
  redis.call('HDEL', site, 'lat', 'lng', 'location')
end
redis.call('HSET', site, 'ver', ARGV[4], unpack(ARGV, 5))
return {'OK', exists and '1' or '0'}
