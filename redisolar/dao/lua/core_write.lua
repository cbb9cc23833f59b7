-- Core backend: upsert one site's readings into UTC-day partitions of packed records.
-- (Writes replace a partition with SET: APPEND would leave unused spare capacity behind.)
-- A partition is a string of 28-byte records '<I4ddd' (ms offset in the day, Wh generated, Wh used,
-- temperature), sorted by offset, one record per timestamp. Net generation is derived on read.
-- KEYS[1] series meta hash (fields v, newest, lo, hi, last: 'ms gen used temp' of the newest reading),
--   KEYS[2] the site hash (its existence, its capacity, its zone's offset history 'tzt': day totals are
--   the site's local days, lib/localday.lua; UTC days without 'tzt'), KEYS[3..] day partitions
--   'core:{site:ID}:d:DAY' (same hash tag): every UTC day of the readings and the two days either
--   side (a local day of a reading spans at most those: offsets lie within +-26 h), then the days the
--   caller expects the retention window to drop (the two days before its start counted from the
--   newest reading of the batch).
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] the day numbers of KEYS[3..], comma-separated,
-- ARGV[3] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique.
-- ARGV[4] '1': the site must exist (its hash), else nothing is written and the error 'NOSITE' returned.
-- Returns {version, capacity or '', {day, generation sum of that day, its length in ms, ...} for every
-- local day touched (23, 24 or 25 h),
-- {hour, the site's generation sum of that hour, ...} for every hour touched, newest ms}, or the error
-- 'RETENTION <oldest allowed ms>' or 'NOSITE' without writing anything.
--@include lib/localday.lua
local DAY = 86400000
local HOUR = 3600000
local REC = 28
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('NOSITE')
end
local retention = tonumber(ARGV[1])
local slot = {} -- day number -> index in KEYS of its partition
local n = 2
for day in string.gmatch(ARGV[2], '[^,]+') do
  n = n + 1
  slot[tonumber(day)] = n
end
local data = ARGV[3]
local count = #data / 32

-- Every partition written, and every one a touched local day spans, must be declared: checked
-- before anything is written. bounds[d] = {start, end} of the local day d; ldays in time order.
local tzt = redis.call('HGET', KEYS[2], 'tzt')
local bounds, ldays, cur_start, cur_end = {}, {}, 0, -1
for pos = 1, #data, 32 do
  local t = struct.unpack('<d', data, pos)
  local day = math.floor(t / DAY)
  if slot[day] == nil then return redis.error_reply('UNDECLARED partition ' .. day) end
  if t < cur_start or t >= cur_end then
    local d = local_day(t, tzt)
    if not bounds[d] then
      bounds[d] = {local_day_bounds(d, tzt)}
      ldays[#ldays + 1] = d
      for p = math.floor(bounds[d][1] / DAY), math.floor((bounds[d][2] - 1) / DAY) do
        if slot[p] == nil then return redis.error_reply('UNDECLARED partition ' .. p) end
      end
    end
    cur_start, cur_end = bounds[d][1], bounds[d][2]
  end
end
local first_ts = struct.unpack('<d', data, 1)
local last_ts = struct.unpack('<d', data, (count - 1) * 32 + 1)
local meta = redis.call('HMGET', KEYS[1], 'newest', 'lo', 'hi', 'v')
local newest = tonumber(meta[1]) or last_ts
if last_ts > newest then newest = last_ts end
local cutoff = -1
if retention > 0 then
  cutoff = newest - retention
  if first_ts < cutoff then
    return redis.error_reply(string.format('RETENTION %d', cutoff))
  end
end

local function last_offset(k, len)
  return struct.unpack('<I4', redis.call('GETRANGE', KEYS[k], len - REC, len - REC + 3))
end

-- The hours the write touches; their absolute sums are computed from the stored data at the end.
local hour_sum, hours = {}, {}
local function touch_hour(ts)
  local hour = math.floor(ts / HOUR)
  if hour_sum[hour] == nil then
    hour_sum[hour] = 0.0
    hours[#hours + 1] = hour
  end
end

local function merge(k, new_offsets, new_records)
  local old = redis.call('GET', KEYS[k])
  local out = {}
  local i, j = 1, 1
  local n_old = #old / REC
  while i <= n_old or j <= #new_offsets do
    local old_off = nil
    if i <= n_old then old_off = struct.unpack('<I4', old, (i - 1) * REC + 1) end
    if j > #new_offsets or (old_off ~= nil and old_off < new_offsets[j]) then
      out[#out + 1] = string.sub(old, (i - 1) * REC + 1, i * REC)
      i = i + 1
    else
      if old_off == new_offsets[j] then i = i + 1 end
      out[#out + 1] = new_records[j]
      j = j + 1
    end
  end
  redis.call('SET', KEYS[k], table.concat(out))
end

local function write_day(day, offsets, records)
  local k = slot[day]
  local len = redis.call('STRLEN', KEYS[k])
  if len == 0 then
    redis.call('SET', KEYS[k], table.concat(records))
  elseif offsets[1] > last_offset(k, len) then
    -- SET, not APPEND: APPEND reserves spare room (up to doubling the string) that is never freed
    redis.call('SET', KEYS[k], redis.call('GET', KEYS[k]) .. table.concat(records))
  else
    merge(k, offsets, records)
  end
end

local days = {}
local pos = 1
while pos <= #data do
  local ts = struct.unpack('<d', data, pos)
  local day = math.floor(ts / DAY)
  local offsets, records = {}, {}
  while pos <= #data do
    local t, g, u, c = struct.unpack('<dddd', data, pos)
    if math.floor(t / DAY) ~= day then break end
    offsets[#offsets + 1] = t - day * DAY
    records[#records + 1] = struct.pack('<I4ddd', t - day * DAY, g, u, c)
    touch_hour(t)
    pos = pos + 32
  end
  write_day(day, offsets, records)
  days[#days + 1] = day
end

-- Partition bookkeeping and retention: drop whole days older than the cutoff, those declared; an older
-- one (after a silence of more than a day) stays, invisible to reads, with lo on it, until the
-- reconciler's trim (core_trim.lua) drops it.
local lo = tonumber(meta[2]) or days[1]
local hi = tonumber(meta[3]) or days[#days]
if days[1] < lo then lo = days[1] end
if days[#days] > hi then hi = days[#days] end
if cutoff >= 0 then
  local last_dead = math.floor(cutoff / DAY) - 1
  local kept = nil
  for d = lo, math.min(last_dead, hi) do
    local k = slot[d]
    if k then redis.call('DEL', KEYS[k]) elseif kept == nil then kept = d end
  end
  if kept then lo = kept elseif last_dead + 1 > lo then lo = last_dead + 1 end
end
local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(meta[4])
if previous and previous >= version then version = previous + 1 end
redis.call('HSET', KEYS[1], 'newest', string.format('%d', newest), 'lo', lo, 'hi', hi,
  'v', string.format('%d', version))
if last_ts >= newest then -- the newest reading itself, for reads of the latest (no partition read)
  local t, g, u, c = struct.unpack('<dddd', data, #data - 31)
  redis.call('HSET', KEYS[1], 'last', string.format('%d %.17g %.17g %.17g', t, g, u, c))
end

-- Sums of the stored data: every visible partition read once (those written, for their UTC hours;
-- those the touched local days span), each local day summed in time order over its bounds.
local parts = {}
local function partition(p)
  if p < lo then return '' end -- dropped, or waiting for the reconciler's trim: invisible
  if parts[p] == nil then
    local k = slot[p]
    parts[p] = redis.call('GET', KEYS[k]) or ''
  end
  return parts[p]
end
for _, day in ipairs(days) do
  local part = partition(day)
  for p = 1, #part, REC do
    local off, g = struct.unpack('<I4d', part, p)
    local ts = day * DAY + off
    local hour = math.floor(ts / HOUR)
    if ts >= cutoff and hour_sum[hour] then hour_sum[hour] = hour_sum[hour] + g end
  end
end
local day_sums = {}
for _, d in ipairs(ldays) do
  local from, to = math.max(bounds[d][1], cutoff), bounds[d][2]
  if to > from then
    local sum = 0
    for p = math.floor(from / DAY), math.floor((to - 1) / DAY) do
      local part = partition(p)
      for q = 1, #part, REC do
        local off, g = struct.unpack('<I4d', part, q)
        local ts = p * DAY + off
        if ts >= from and ts < to then sum = sum + g end
      end
    end
    day_sums[#day_sums + 1] = d
    day_sums[#day_sums + 1] = string.format('%.17g', sum)
    day_sums[#day_sums + 1] = string.format('%d', bounds[d][2] - bounds[d][1])
  end
end
local hour_sums = {}
for _, hour in ipairs(hours) do
  hour_sums[#hour_sums + 1] = hour
  hour_sums[#hour_sums + 1] = string.format('%.17g', hour_sum[hour])
end
return {version, redis.call('HGET', KEYS[2], 'capacity') or '', day_sums, hour_sums,
  string.format('%d', newest)}
