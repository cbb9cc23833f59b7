-- History rollups: recompute the UTC hours and the local days a write touched, ABSOLUTELY from the
-- site's raw readings (never incrementally: a retried or repeated call writes the same bytes).
-- Runs right after the site's write script, in the same pipeline (redisolar/dao/history.py).
-- KEYS[1] history meta hash 'hist:{site:ID}:meta' (newest: the newest reading rolled up; lh/hh:
--   lowest/highest hour block written; ld/hd: lowest/highest day block written),
-- KEYS[2] the site hash (its existence; 'tzt': its zone's offsets, lib/localday.lua; absent: UTC days),
-- KEYS[3] the series meta hash 'tsmeta:{site:ID}',
-- KEYS[4 .. 3+NSRC] the raw readings: 'core' the day partitions of consecutive UTC days from ARGV[7];
--   'ts' the three series wh_generated, wh_used, temp_c,
-- then NH hour blocks 'hist:{site:ID}:h:B' (B = hour // 720) from block ARGV[8],
-- then ND day blocks 'hist:{site:ID}:d:B' (B = local day // 360) from block ARGV[10],
-- then NDEAD block keys wholly older than the history window (deleted).
-- ARGV[1] backend 'core'|'ts', ARGV[2] '1': only if the site hash exists, ARGV[3] raw retention ms
-- (0 = none), ARGV[4] history ms (0 = forever), ARGV[5] the touched hours (comma separated hour
-- numbers), ARGV[6] NSRC, ARGV[7] first partition day, ARGV[8] first hour block, ARGV[9] NH,
-- ARGV[10] first day block, ARGV[11] ND, ARGV[12] NDEAD.
-- Records: an hour is 17 little-endian doubles (count, peak ms, then for wh_generated, wh_used,
-- temp_c: sum, min, max, first, last); a day 19 (count, peak ms, start ms, end ms, then the same 15).
-- Slot i of a block holds hour/day (block * size + i); a slot of zeros (count 0) is empty.
-- An hour or day that starts before the raw window (newest - retention) is left as it is: its older
-- readings are gone, so it cannot be recomputed (but one without a record yet, a backfill near the
-- window's start, gets the rollup of its visible readings). Returns {hours written, days written}.
--@include lib/localday.lua
local HOUR = 3600000
local DAY = 86400000
local HBLOCK = 720
local DBLOCK = 360
local HREC = 136
local DREC = 152
local backend = ARGV[1]
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return {0, 0} end
local retention = tonumber(ARGV[3])
local history = tonumber(ARGV[4])
local nsrc = tonumber(ARGV[6])
local d0 = tonumber(ARGV[7])
local hb0, nh = tonumber(ARGV[8]), tonumber(ARGV[9])
local db0, nd = tonumber(ARGV[10]), tonumber(ARGV[11])
local ndead = tonumber(ARGV[12])
local HKEY0 = 3 + nsrc
local DKEY0 = HKEY0 + nh
local DEAD0 = DKEY0 + nd

local newest
if backend == 'core' then
  newest = tonumber(redis.call('HGET', KEYS[3], 'newest'))
else
  local latest = redis.pcall('TS.GET', KEYS[4])
  if type(latest) == 'table' and latest[1] then newest = tonumber(latest[1]) end
end
if newest == nil then return {0, 0} end
local visible = -1
if retention > 0 then visible = newest - retention end

-- Core: the readings in [lo, hi) (those still visible), as four parallel arrays.
local parts = {}  -- core: each partition read once per call (an hour and its day read the same one)
local function partition(k)
  if parts[k] == nil then parts[k] = redis.call('GET', KEYS[k]) end
  return parts[k]
end
local function readings(lo, hi)
  if lo < visible then lo = visible end
  local T, G, U, C = {}, {}, {}, {}
  if hi <= lo then return T, G, U, C end
  do
    for day = math.floor(lo / DAY), math.floor((hi - 1) / DAY) do
      local k = 4 + day - d0
      local part = (k >= 4 and k <= 3 + nsrc) and partition(k)
      if part then
        local base = day * DAY
        local n = #part / 28
        local a, b = 0, n  -- first record whose time is >= lo
        while a < b do
          local mid = math.floor((a + b) / 2)
          if base + struct.unpack('<I4', part, mid * 28 + 1) < lo then a = mid + 1 else b = mid end
        end
        for i = a, n - 1 do
          local off, g, u, c = struct.unpack('<I4ddd', part, i * 28 + 1)
          local ts = base + off
          if ts >= hi then break end
          T[#T + 1], G[#G + 1], U[#U + 1], C[#C + 1] = ts, g, u, c
        end
      end
    end
  end
  return T, G, U, C
end

-- RedisTimeSeries: the module reduces [lo, hi) itself (one bucket of hi - lo aligned at lo; its
-- sums run in time order too), the peak is the first sample at the max: no sample crosses into Lua.
local function num(v)  -- the module replies with a status (RESP2) or a double (RESP3)
  if type(v) == 'table' then v = v.ok or v.double end
  return tonumber(v)
end
local function ts_rollup(lo, hi)
  if lo < visible then lo = visible end
  if hi <= lo then return nil end
  local from, to, width = string.format('%d', lo), string.format('%d', hi - 1), string.format('%d', hi - lo)
  local function reduce(k, aggregation)
    local r = redis.pcall('TS.RANGE', KEYS[k], from, to, 'ALIGN', from, 'AGGREGATION', aggregation, width)
    if type(r) ~= 'table' or not r[1] then return nil end
    return num(r[1][2])
  end
  local n = reduce(4, 'count')
  if not n or n == 0 then return nil end
  local out = {n, 0}
  for m = 1, 3 do
    for _, aggregation in ipairs({'sum', 'min', 'max', 'first', 'last'}) do
      out[#out + 1] = reduce(3 + m, aggregation)
    end
  end
  local peak = out[5]
  local at = redis.call('TS.RANGE', KEYS[4], from, to, 'FILTER_BY_VALUE', string.format('%.17g', peak),
    string.format('%.17g', peak), 'COUNT', 1)
  out[2] = tonumber(at[1][1])
  return out
end

-- count, peak ms, then sum/min/max/first/last of each metric (sums in time order, as the raw reads).
local function rollup(lo, hi)
  if backend ~= 'core' then return ts_rollup(lo, hi) end
  local T, G, U, C = readings(lo, hi)
  local n = #T
  if n == 0 then return nil end
  local out = {n, T[1]}
  local peak = G[1]
  for i = 2, n do if G[i] > peak then peak, out[2] = G[i], T[i] end end
  for _, V in ipairs({G, U, C}) do
    local s, lo_v, hi_v = 0.0, V[1], V[1]
    for i = 1, n do
      local v = V[i]
      s = s + v
      if v < lo_v then lo_v = v end
      if v > hi_v then hi_v = v end
    end
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4], out[#out + 5] = s, lo_v, hi_v, V[1], V[n]
  end
  return out
end

-- A block is created whole (zeros), so it is allocated once at its size (SETRANGE grows a string
-- greedily: a block grown slot by slot takes up to a third more memory).
local function put(k, offset, size, record, whole)
  if record then
    if redis.call('EXISTS', KEYS[k]) == 0 then redis.call('SET', KEYS[k], string.rep('\0', whole)) end
    redis.call('SETRANGE', KEYS[k], offset, struct.pack('<' .. string.rep('d', #record), unpack(record)))
  elseif redis.call('STRLEN', KEYS[k]) > offset then
    redis.call('SETRANGE', KEYS[k], offset, string.rep('\0', size))
  end
end

-- Whether slot offset of block KEYS[k] holds no record (a period begun before the raw window is
-- rolled up from its visible readings only while it has no record: never over a whole one).
local function empty(k, offset)
  local count = redis.call('GETRANGE', KEYS[k], offset, offset + 7)
  return #count < 8 or struct.unpack('<d', count) == 0
end

local meta = redis.call('HMGET', KEYS[1], 'newest', 'lh', 'hh', 'ld', 'hd')
local function widen(lo_field, hi_field, lo_cur, hi_cur, block)
  if lo_cur == nil or block < lo_cur then redis.call('HSET', KEYS[1], lo_field, block) end
  if hi_cur == nil or block > hi_cur then redis.call('HSET', KEYS[1], hi_field, block) end
end
local horizon = -1  -- nothing starting before it is kept
if history > 0 then horizon = newest - history end

local hours_written = 0
local lh, hh = tonumber(meta[2]), tonumber(meta[3])
for h in string.gmatch(ARGV[5], '%d+') do
  local hour = tonumber(h)
  local start = hour * HOUR
  local block = math.floor(hour / HBLOCK)
  local k = HKEY0 + 1 + block - hb0
  local offset = (hour - block * HBLOCK) * HREC
  if start >= horizon and k > HKEY0 and k <= DKEY0 and (start >= visible or empty(k, offset)) then
    local record = rollup(start, start + HOUR)
    put(k, offset, HREC, record, HBLOCK * HREC)
    if record then
      widen('lh', 'hh', lh, hh, block)
      lh, hh = math.min(lh or block, block), math.max(hh or block, block)
    end
    hours_written = hours_written + 1
  end
end

-- Local days in the site's zone (its 'tzt'; UTC days without one).
local tzt = redis.call('HGET', KEYS[2], 'tzt')

local days, seen = {}, {}
for h in string.gmatch(ARGV[5], '%d+') do
  local start = tonumber(h) * HOUR
  for _, t in ipairs({start, start + HOUR - 1}) do
    local d = local_day(t, tzt)
    if not seen[d] then seen[d] = true; days[#days + 1] = d end
  end
end
local days_written = 0
local ld, hd = tonumber(meta[4]), tonumber(meta[5])
for _, day in ipairs(days) do
  local start, stop = local_day_bounds(day, tzt)
  local block = math.floor(day / DBLOCK)
  local k = DKEY0 + 1 + block - db0
  local offset = (day - block * DBLOCK) * DREC
  if start >= horizon and k > DKEY0 and k <= DEAD0 and (start >= visible or empty(k, offset)) then
    local record = rollup(start, stop)
    if record then
      table.insert(record, 3, start)
      table.insert(record, 4, stop)
    end
    put(k, offset, DREC, record, DBLOCK * DREC)
    if record then
      widen('ld', 'hd', ld, hd, block)
      ld, hd = math.min(ld or block, block), math.max(hd or block, block)
    end
    days_written = days_written + 1
  end
end

if tonumber(meta[1]) == nil or newest > tonumber(meta[1]) then redis.call('HSET', KEYS[1], 'newest', string.format('%d', newest)) end
for i = DEAD0 + 1, DEAD0 + ndead do redis.call('DEL', KEYS[i]) end
return {hours_written, days_written}
