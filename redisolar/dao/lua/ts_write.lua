-- RedisTimeSeries backend: upsert one site's readings into its three series, atomically.
-- KEYS[1..3] series wh_generated, wh_used, temp_c; KEYS[4] series meta hash (field v);
-- KEYS[5] the site hash (for its capacity). (Net generation is derived on read: no series.)
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- ARGV[4] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique. Numbers are passed to the module as Lua numbers:
--         Redis turns them into round-trip exact text.
-- Returns {version, capacity or '', {day, generation sum of that day, ...} for every day touched,
-- {hour, the site's generation sum of that hour, ...} for every hour touched, newest ms}, or the error
-- 'RETENTION <oldest allowed ms>' without writing anything.
local DAY = 86400000
local HOUR = 3600000
local METRICS = {'wh_generated', 'wh_used', 'temp_c'}
local retention = tonumber(ARGV[1])
local data = ARGV[4]
local first_ts = struct.unpack('<d', data, 1)
local last_ts = struct.unpack('<d', data, #data - 31)

local newest = last_ts
local stored_newest = nil
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists then
  local latest = redis.call('TS.GET', KEYS[1])
  if latest[1] then stored_newest = tonumber(latest[1]) end
  if stored_newest and stored_newest > newest then newest = stored_newest end
end
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
-- The hours and days the write touches; their sums are read back from the series at the end.
local hours, touched, nhours = {}, {}, 0
local days, ndays = {}, 0
local hour, day = nil, nil
for pos = 1, #data, 32 do
  local t, g, u, c = struct.unpack('<dddd', data, pos)
  local ts = string.format('%d', t) -- converted once, not once per series
  args[n + 1] = KEY1; args[n + 2] = ts; args[n + 3] = g
  args[n + 4] = KEY2; args[n + 5] = ts; args[n + 6] = u
  args[n + 7] = KEY3; args[n + 8] = ts; args[n + 9] = c
  n = n + 9
  if n >= 3000 then flush() end
  local h = math.floor(t / HOUR)
  if h ~= hour and not touched[h] then
    touched[h] = true
    nhours = nhours + 1
    hours[nhours] = h
  end
  hour = h
  local d = math.floor(t / DAY)
  if d ~= day and (ndays == 0 or days[ndays] ~= d) then
    ndays = ndays + 1
    days[ndays] = d
  end
  day = d
end
flush()

local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(redis.call('HGET', KEYS[4], 'v'))
if previous and previous >= version then version = previous + 1 end
redis.call('HSET', KEYS[4], 'v', string.format('%d', version))

local function value(v)
  if type(v) == 'table' then return v.ok or v.double end -- the module may reply with a status
  return v
end
local function sums_of(day, bucket)
  return redis.call('TS.RANGE', KEYS[1], string.format('%d', math.max(day * DAY, cutoff)),
    string.format('%d', day * DAY + DAY - 1), 'AGGREGATION', 'sum', bucket)
end
local day_sums, hour_sum = {}, {}
for _, day in ipairs(days) do
  local sums = sums_of(day, DAY)
  day_sums[#day_sums + 1] = day
  day_sums[#day_sums + 1] = (sums[1] and value(sums[1][2])) or '0'
  for _, bucket in ipairs(sums_of(day, HOUR)) do
    hour_sum[math.floor(tonumber(bucket[1]) / HOUR)] = value(bucket[2])
  end
end
local hour_sums = {}
for _, hour in ipairs(hours) do
  hour_sums[#hour_sums + 1] = hour
  hour_sums[#hour_sums + 1] = hour_sum[hour] or '0'
end
return {version, redis.call('HGET', KEYS[5], 'capacity') or '', day_sums, hour_sums,
  string.format('%d', newest)}
