-- sites_index.lua: set or remove one site's entries in every fleet-wide site index, absolutely.
--
-- All keys share the hash tag {sites} (one slot). The script keeps its own record of what it indexed
-- for each site (KEYS[5], id -> record), so it removes the old entries itself and a retry changes
-- nothing. Records carry the version of the site hash they reflect: an older version never replaces a
-- newer one. The old state/city/postal sets must be declared, so the caller passes the values it
-- believes the record holds (with their set keys); when that belief is wrong nothing is written and
-- the record's values come back for a retry.
--
-- A record: version, state, city, postal code, capacity, panels, lng, lat, c0, c1, c2 joined by U+001F
-- (lng and lat "" without a coordinate; c0..c2 the capacity's limbs, see dao/sites/totals.py).
--
-- KEYS[1]     sites:ids (sorted set, score = id)   KEYS[2] sites:geo (geo set)
-- KEYS[3]     capacity leaderboard (sorted set)    KEYS[4] its running sum (string)
-- KEYS[5]     records (hash)                       KEYS[6] running totals (hash)
-- KEYS[7..9]  state, city, postal code sets of the new values (any set of {sites} for "remove")
-- KEYS[10..12] state, city, postal code sets of the believed record
-- ARGV[1]     mode: "upsert", "create" (only if no record), "update" (only if one), "remove", or
--             "reindex" (as upsert, and a record of the same version is rewritten: the reconciler)
-- ARGV[2]     "1": a failed guard is an error; "0": return STALE
-- ARGV[3]     "1" if the caller believes there is a record, "0" if not
-- ARGV[4..6]  the believed record's state, city, postal code ("" when none)
-- ARGV[7]     site id       ARGV[8] leaderboard member ("site:ID")      ARGV[9] version
-- ARGV[10]    the new record ("" for "remove")
-- Returns {"OK"} | {"EXISTS"} | {"MISSING"} | {"OLD", record} | {"STALE", present, state, city, postal}

local SEP = '\31'
local function split(record)
  local out, from = {}, 1
  while true do
    local at = string.find(record, SEP, from, true)
    if not at then
      out[#out + 1] = string.sub(record, from)
      return out
    end
    out[#out + 1] = string.sub(record, from, at - 1)
    from = at + 1
  end
end

local mode, id, member, version = ARGV[1], ARGV[7], ARGV[8], tonumber(ARGV[9])
local old_text = redis.call('HGET', KEYS[5], id)
local old = nil
if old_text then old = split(old_text) end
if old and mode == 'create' then return {'EXISTS'} end
if not old and mode == 'update' then return {'MISSING'} end
if old then
  local stored = tonumber(old[1])
  if stored > version or (stored == version and mode ~= 'reindex') then
    return {'OLD', old_text}
  end
end
local believed = ARGV[3] == '1'
if (old ~= nil) ~= believed or (old and (old[2] ~= ARGV[4] or old[3] ~= ARGV[5] or old[4] ~= ARGV[6])) then
  if ARGV[2] == '1' then
    return redis.error_reply('STALE the site index changed while it was being written; retry')
  end
  if old then return {'STALE', '1', old[2], old[3], old[4]} end
  return {'STALE', '0', '', '', ''}
end

local new = mode ~= 'remove' and split(ARGV[10]) or nil
-- GEOADD is the only write that can fail on input (the caller validates coordinates): do it first.
if new and new[7] ~= '' then
  redis.call('GEOADD', KEYS[2], new[7], new[8], id)
else
  redis.call('ZREM', KEYS[2], id)
end

local stats = KEYS[6]
local function count(rec, sign)
  local state = rec[2]
  redis.call('HINCRBY', stats, 'sites', sign)
  redis.call('HINCRBY', stats, 'panels', string.format('%d', sign * tonumber(rec[6])))
  local left = redis.call('HINCRBY', stats, 'n:' .. state, sign)
  for limb = 0, 2 do
    local value = string.format('%d', sign * tonumber(rec[9 + limb]))
    redis.call('HINCRBY', stats, 'c' .. limb, value)
    redis.call('HINCRBY', stats, 'c' .. limb .. ':' .. state, value)
  end
  if left == 0 then
    redis.call('HDEL', stats, 'n:' .. state, 'c0:' .. state, 'c1:' .. state, 'c2:' .. state)
  end
end

if old then
  for i = 10, 12 do redis.call('SREM', KEYS[i], id) end
  count(old, -1)
end
if new then
  for i = 7, 9 do redis.call('SADD', KEYS[i], id) end
  redis.call('ZADD', KEYS[1], id, id)
  redis.call('ZADD', KEYS[3], new[5], member)
  redis.call('HSET', KEYS[5], id, ARGV[10])
  count(new, 1)
else
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[3], member)
  redis.call('HDEL', KEYS[5], id)
end

if redis.call('HGET', stats, 'sites') == '0' then redis.call('DEL', stats) end

-- The board's running sum, from the exact limbs (absolute: no drift, no delta to lose).
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[4])
else
  local limbs = redis.call('HMGET', stats, 'c0', 'c1', 'c2')
  local total = (tonumber(limbs[3]) or 0) / 1024 + (tonumber(limbs[2]) or 0) / 35184372088832
    + (tonumber(limbs[1]) or 0) / 1208925819614629174706176
  redis.call('SET', KEYS[4], string.format('%.17g', total))
end
return {'OK'}
