-- RedisTimeSeries backend: upsert one site's readings into its three series, atomically.
-- KEYS[1..3] series wh_generated, wh_used, temp_c; KEYS[4] series meta hash (field v);
-- KEYS[5] the site hash (for its capacity). (Net generation is derived on read: no series.)
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- ARGV[4] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique. Numbers are passed to the module as Lua numbers:
--         Redis turns them into round-trip exact text.
-- Returns {version, capacity or '', {day, generation sum of that day, ...} for every day touched,
-- {hour, change of that hour's generation, ...}, newest ms}, or the error
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

local replaced = {}
if stored_newest and first_ts <= stored_newest then -- some readings may overwrite stored ones
  for _, sample in ipairs(redis.call('TS.RANGE', KEYS[1], string.format('%d', first_ts),
      string.format('%d', last_ts))) do
    local v = sample[2]
    if type(v) == 'table' then v = v.ok or v.double end
    replaced[tonumber(sample[1])] = tonumber(v)
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
-- How much each touched hour's generation changes: new values in, replaced values out.
local hours, hour_delta, nhours = {}, {}, 0
local days, ndays = {}, 0
local hour, delta, day = nil, 0, nil
for pos = 1, #data, 32 do
  local t, g, u, c = struct.unpack('<dddd', data, pos)
  local ts = string.format('%d', t) -- converted once, not once per series
  args[n + 1] = KEY1; args[n + 2] = ts; args[n + 3] = g
  args[n + 4] = KEY2; args[n + 5] = ts; args[n + 6] = u
  args[n + 7] = KEY3; args[n + 8] = ts; args[n + 9] = c
  n = n + 9
  if n >= 3000 then flush() end
  local h = math.floor(t / HOUR)
  if h ~= hour then
    if hour ~= nil then hour_delta[hour] = (hour_delta[hour] or 0) + delta end
    if hour_delta[h] == nil then
      nhours = nhours + 1
      hours[nhours] = h
    end
    hour, delta = h, 0
  end
  delta = delta + g - (replaced[t] or 0)
  local d = math.floor(t / DAY)
  if d ~= day and (ndays == 0 or days[ndays] ~= d) then
    ndays = ndays + 1
    days[ndays] = d
  end
  day = d
end
hour_delta[hour] = (hour_delta[hour] or 0) + delta
flush()

local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(redis.call('HGET', KEYS[4], 'v'))
if previous and previous >= version then version = previous + 1 end
redis.call('HSET', KEYS[4], 'v', string.format('%d', version))

local day_sums = {}
for _, day in ipairs(days) do
  local from = math.max(day * DAY, cutoff)
  local sums = redis.call('TS.RANGE', KEYS[1], string.format('%d', from),
    string.format('%d', day * DAY + DAY - 1), 'AGGREGATION', 'sum', DAY)
  local total = (sums[1] and sums[1][2]) or '0'
  if type(total) == 'table' then total = total.ok or total.double end -- the module replies with a status
  day_sums[#day_sums + 1] = day
  day_sums[#day_sums + 1] = total
end
local hour_changes = {}
for _, hour in ipairs(hours) do
  hour_changes[#hour_changes + 1] = hour
  hour_changes[#hour_changes + 1] = string.format('%.17g', hour_delta[hour])
end
return {version, redis.call('HGET', KEYS[5], 'capacity') or '', day_sums, hour_changes,
  string.format('%d', newest)}
