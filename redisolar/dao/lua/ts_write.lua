-- RedisTimeSeries backend: upsert one site's readings into its three series, atomically.
-- KEYS[1..3] series wh_generated, wh_used, temp_c; KEYS[4] series meta hash: v (data version), pv (the v
--   before this write: history_set.lua's append fast path), and a
--   cache valid while its field cv equals v (a writer that does not keep it, as earlier versions of this
--   script, invalidates it by changing v): newest (ms);
-- KEYS[5] the site hash (its existence, its capacity). (Net generation is derived on read.)
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- ARGV[4] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique. Numbers are passed to the module as Lua numbers:
--         Redis turns them into round-trip exact text.
-- ARGV[5] '1': the site must exist (its hash), else nothing is written and the error 'NOSITE' returned.
-- Returns {version, capacity or '', newest ms}, or the error 'RETENTION <oldest allowed ms>' or 'NOSITE'
-- without writing anything. The generation totals of the touched hours and local days are computed
-- once, by history_set.lua, which follows in the same pipeline (redisolar/dao/history.py).
local METRICS = {'wh_generated', 'wh_used', 'temp_c'}
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  return redis.error_reply('NOSITE')
end
local retention = tonumber(ARGV[1])
local data = ARGV[4]
local first_ts = struct.unpack('<d', data, 1)
local last_ts = struct.unpack('<d', data, #data - 31)

-- The meta hash keeps the newest timestamp (no TS.GET); series written by earlier versions lack it.
local meta = redis.call('HMGET', KEYS[4], 'v', 'newest', 'dsum', 'hsum', 'cv')
local valid = meta[5] and meta[5] == meta[1]
local stored_newest = valid and tonumber(meta[2]) or nil
local exists = stored_newest ~= nil
if not exists then
  exists = redis.call('EXISTS', KEYS[1]) == 1
  if exists then
    local latest = redis.call('TS.GET', KEYS[1])
    if latest[1] then stored_newest = tonumber(latest[1]) end
  end
end
local newest = last_ts
if stored_newest and stored_newest > newest then newest = stored_newest end
local cutoff = -1
if retention > 0 then
  cutoff = newest - retention
  if first_ts < cutoff then
    return redis.error_reply(string.format('RETENTION %d', cutoff))
  end
end

-- The three series are created together, here, so the first one tells about all of them.
if not exists then
  for m = 1, 3 do
    redis.call('TS.CREATE', KEYS[m], 'RETENTION', ARGV[1], 'DUPLICATE_POLICY', 'LAST', 'CHUNK_SIZE', 512,
      'LABELS', 'app', ARGV[3], 'site_id', ARGV[2], 'metric', METRICS[m], 'type', 'meter_reading')
  end
end

-- The readings go to TS.MADD in chunks (a Lua call takes at most ~8000 arguments). Counters, not the
-- # operator, index the tables: this loop is the hot path of ingest.
local KEY1, KEY2, KEY3 = KEYS[1], KEYS[2], KEYS[3]
local args, n = {}, 0
local function flush()
  if n > 0 then
    for _, r in ipairs(redis.call('TS.MADD', unpack(args, 1, n))) do
      if type(r) == 'table' and r.err then error(r) end
    end
    n = 0
  end
end
for pos = 1, #data, 32 do
  local t, g, u, c = struct.unpack('<dddd', data, pos)
  local ts = string.format('%d', t) -- converted once, not once per series
  args[n + 1] = KEY1; args[n + 2] = ts; args[n + 3] = g
  args[n + 4] = KEY2; args[n + 5] = ts; args[n + 6] = u
  args[n + 7] = KEY3; args[n + 8] = ts; args[n + 9] = c
  n = n + 9
  if n >= 3000 then flush() end
end
flush()

local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(meta[1])
if previous and previous >= version then version = previous + 1 end
local vtext = string.format('%d', version)

-- The meta hash: version, and the cache valid for it: newest (fields of earlier versions of this
-- script, the day and hour sums 'dsum'/'hsum', are dropped: history_set.lua computes the totals).
redis.call('HSET', KEYS[4], 'v', vtext, 'cv', vtext, 'newest', string.format('%d', newest), 'pv', meta[1] or '0')
if meta[3] or meta[4] then redis.call('HDEL', KEYS[4], 'dsum', 'hsum') end
return {version, redis.call('HGET', KEYS[5], 'capacity') or '', string.format('%d', newest)}
