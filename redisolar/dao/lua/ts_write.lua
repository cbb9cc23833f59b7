-- RedisTimeSeries backend: upsert one site's readings into its three series, atomically.
-- KEYS[1..3] series wh_generated, wh_used, temp_c; KEYS[4] series meta hash: v (data version), and a
--   cache valid while its field cv equals v (a writer that does not keep it, as earlier versions of this
--   script, invalidates it by changing v): newest (ms), dsum ('N/START:SUM': the generation sum of the
--   site-local day N, starting at START ms, of the newest reading: a day counted in another zone, or
--   a UTC day cached as 'N:SUM' by earlier versions, never matches), hsum ('N:SUM': of the UTC hour N);
-- KEYS[5] the site hash (its existence, its capacity, its zone's offset history 'tzt': days are the
--   site's local days, lib/localday.lua; UTC days without 'tzt'). (Net generation is derived on read.)
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- ARGV[4] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique. Numbers are passed to the module as Lua numbers:
--         Redis turns them into round-trip exact text.
-- ARGV[5] '1': the site must exist (its hash), else nothing is written and the error 'NOSITE' returned.
-- Returns {version, capacity or '', {day, generation sum of that day, its length in ms, ...} for every
-- local day touched (23, 24 or 25 h),
-- {hour, the site's generation sum of that hour, ...} for every hour touched, newest ms}, or the error
-- 'RETENTION <oldest allowed ms>' or 'NOSITE' without writing anything.
--@include lib/localday.lua
local HOUR = 3600000
local METRICS = {'wh_generated', 'wh_used', 'temp_c'}
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  return redis.error_reply('NOSITE')
end
local retention = tonumber(ARGV[1])
local tzt = redis.call('HGET', KEYS[5], 'tzt')
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

-- An append (every reading newer than the stored newest, as meters report) computes its sums here, in
-- time order as the module sums: each touched day and hour starts from 0, or, for the day and hour of
-- the stored newest reading, from their cached sum (else one TS.RANGE over the stored part).
local append = stored_newest == nil or first_ts > stored_newest
-- A cached sum is tagged 'N' (hour) or 'N/START' (local day): valid only for that tag.
local function cached(field, tag, start)
  if not (valid and field) or start < cutoff then return nil end
  local m, sum = string.match(field, '^([^:]+):(.+)$')
  if m == tag then return tonumber(sum) end
  return nil
end
-- The local days met so far: bounds[d] = {start, end}; day_of(t) asks the library only when t
-- leaves the last day met (readings come sorted).
local bounds, cur_day, cur_start, cur_end = {}, nil, 0, -1
local function day_of(t)
  if t < cur_start or t >= cur_end then
    cur_day = local_day(t, tzt)
    if not bounds[cur_day] then bounds[cur_day] = {local_day_bounds(cur_day, tzt)} end
    cur_start, cur_end = bounds[cur_day][1], bounds[cur_day][2]
  end
  return cur_day
end
local function day_tag(d) return string.format('%d/%d', d, bounds[d][1]) end
local function stored_sum(start, width)
  local r = redis.call('TS.RANGE', KEYS[1], string.format('%d', math.max(start, cutoff)),
    string.format('%d', stored_newest), 'AGGREGATION', 'sum', string.format('%d', width),
    'ALIGN', string.format('%d', math.max(start, cutoff)))
  local v = r[1] and r[1][2]
  if type(v) == 'table' then v = v.ok or v.double end
  return tonumber(v) or 0.0
end
local day_acc, hour_acc = {}, {}
if append and stored_newest then
  local d, h = day_of(stored_newest), math.floor(stored_newest / HOUR)
  if day_of(first_ts) == d then
    local b = bounds[d]
    day_acc[d] = cached(meta[3], day_tag(d), b[1]) or stored_sum(b[1], b[2] - b[1])
  end
  if math.floor(first_ts / HOUR) == h then
    hour_acc[h] = cached(meta[4], tostring(h), h * HOUR) or stored_sum(h * HOUR, HOUR)
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
-- The hours and days the write touches (any other write reads their sums back from the series).
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
  local d = day_of(t)
  if d ~= day and (ndays == 0 or days[ndays] ~= d) then
    ndays = ndays + 1
    days[ndays] = d
  end
  day = d
  if append then
    hour_acc[h] = (hour_acc[h] or 0.0) + g
    day_acc[d] = (day_acc[d] or 0.0) + g
  end
end
flush()

local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(meta[1])
if previous and previous >= version then version = previous + 1 end
local vtext = string.format('%d', version)

local function value(v)
  if type(v) == 'table' then return v.ok or v.double end -- the module may reply with a status
  return v
end
local function fmt(x) return string.format('%.17g', x) end
local day_sum, hour_sum = {}, {}
if append then
  for d, sum in pairs(day_acc) do day_sum[d] = fmt(sum) end
  for h, sum in pairs(hour_acc) do hour_sum[h] = fmt(sum) end
else
  -- Two ranges whatever the batch: every touched day's sum (epoch-aligned day buckets), and the hourly
  -- sums over the touched hours' span only (buckets are what the reply costs, not the samples).
  local function sums(from, to, bucket)
    return redis.call('TS.RANGE', KEYS[1], string.format('%d', math.max(from, cutoff)),
      string.format('%d', to - 1), 'AGGREGATION', 'sum', bucket)
  end
  for i = 1, ndays do -- a local day is one bucket as wide as the day, aligned on its start
    local d, b = days[i], bounds[days[i]]
    local from = math.max(b[1], cutoff)
    if b[2] > from then
      local r = redis.call('TS.RANGE', KEYS[1], string.format('%d', from), string.format('%d', b[2] - 1),
        'AGGREGATION', 'sum', string.format('%d', b[2] - from), 'ALIGN', string.format('%d', from))
      if r[1] then day_sum[d] = value(r[1][2]) end
    end
  end
  local first_hour, last_hour = hours[1], hours[1]
  for i = 2, nhours do
    if hours[i] < first_hour then first_hour = hours[i] end
    if hours[i] > last_hour then last_hour = hours[i] end
  end
  for _, bucket in ipairs(sums(first_hour * HOUR, last_hour * HOUR + HOUR, HOUR)) do
    hour_sum[math.floor(tonumber(bucket[1]) / HOUR)] = value(bucket[2])
  end
end

-- The meta hash: version, and the cache for it: newest, the sums of the newest reading's day and hour
-- when this write knows them (computed, or cached and untouched by this write), else removed.
local newest_day, newest_hour = day_of(newest), math.floor(newest / HOUR)
local fields = {'v', vtext, 'cv', vtext, 'newest', string.format('%d', newest)}
local function stamp(name, field, tag, sum)
  if sum == nil and cached(field, tag, -1) then -- untouched by this write: still true
    sum = string.match(field, ':(.+)$')
  end
  if sum ~= nil then -- text that converts back to the exact double (%.17g here, or the module's)
    fields[#fields + 1] = name
    fields[#fields + 1] = tag .. ':' .. sum
  elseif field then
    redis.call('HDEL', KEYS[4], name) -- unknown now: never read as valid again
  end
end
stamp('dsum', meta[3], day_tag(newest_day), day_sum[newest_day])
stamp('hsum', meta[4], tostring(newest_hour), hour_sum[newest_hour])
redis.call('HSET', KEYS[4], unpack(fields))

local day_sums, hour_sums = {}, {}
for _, day in ipairs(days) do
  day_sums[#day_sums + 1] = day
  day_sums[#day_sums + 1] = day_sum[day] or '0'
  day_sums[#day_sums + 1] = string.format('%d', bounds[day][2] - bounds[day][1])
end
for _, hour in ipairs(hours) do
  hour_sums[#hour_sums + 1] = hour
  hour_sums[#hour_sums + 1] = hour_sum[hour] or '0'
end
return {version, redis.call('HGET', KEYS[5], 'capacity') or '', day_sums, hour_sums,
  string.format('%d', newest)}
