-- History rollups: recompute the UTC hours a write touched ABSOLUTELY from the site's raw readings,
-- then compose the local days those hours touch ABSOLUTELY from the hour records now stored (never
-- incrementally: a retried or repeated call writes the same bytes). The cost of a one-reading write
-- is one hour of readings plus a local day of hour records, whatever the day holds; an append (the
-- fast path below) reads only its new readings plus the local day of hour records.
-- Append fast path: an ingest call (ARGV[13] '') right after the one write since the last rollup
-- (the series meta's 'pv', the data version before this write, equals the history meta's 'hv':
-- every earlier write was rolled up; a concurrent writer or a lost history call makes them differ)
-- whose readings all follow the newest reading rolled up (ARGV[14], its first reading's ms, greater
-- than 'newest': retries, overwrites and backfills are recomputed). A touched hour that holds that
-- newest reading, begins inside the raw window and has a record is EXTENDED by the readings after it
-- (core: a binary search in the partition; redistimeseries: TS.RANGE, at most 64, else recomputed):
-- count, the sums in time order (the full path sums an hour's readings in time order from 0.0, so
-- old sum + each new value in order gives the same bits), min, max, last, the peak (a later reading
-- only if strictly higher: the first at the max). The same bytes as a recomputation
-- (tests/test_history_append.py); everything else (the days, the reply, 'hv', 'newest') as below.
-- Runs right after the site's write script, in the same pipeline (redisolar/dao/history.py).
-- KEYS[1] history meta hash 'hist:{site:ID}:meta' (newest: the newest reading rolled up; lh/hh:
--   lowest/highest hour block written; ld/hd: lowest/highest day block written),
-- KEYS[2] the site hash (its existence; 'tzt': its zone's offsets, lib/localday.lua; absent: UTC days),
-- KEYS[3] the series meta hash 'tsmeta:{site:ID}',
-- KEYS[4 .. 3+NSRC] the raw readings: 'core' the day partitions of consecutive UTC days from ARGV[7]
--   (those of the touched hours and one day either side: a local day's edge hours lie there);
--   'ts' the three series wh_generated, wh_used, temp_c,
-- then NH hour blocks 'hist:{site:ID}:h:B' (B = hour // 720) from block ARGV[8] (those of the touched
--   hours and of every hour of the local days they touch),
-- then ND day blocks 'hist:{site:ID}:d:B' (B = local day // 360) from block ARGV[10],
-- then NDEAD block keys wholly older than the history window (deleted).
-- ARGV[1] backend 'core'|'ts', ARGV[2] '1': only if the site hash exists, ARGV[3] raw retention ms
-- (0 = none), ARGV[4] history ms (0 = forever), ARGV[5] the touched hours (comma separated hour
-- numbers), ARGV[6] NSRC, ARGV[7] first partition day, ARGV[8] first hour block, ARGV[9] NH,
-- ARGV[10] first day block, ARGV[11] ND, ARGV[12] NDEAD, ARGV[13] what to write: 'h' the hours only,
-- 'd' the local days only (composed from the hour records as they are), '' both (ingest), ARGV[14]
-- the ms of the call's first reading (the fast path's test).
-- Records: an hour is 17 little-endian doubles (count, peak ms, then for wh_generated, wh_used,
-- temp_c: sum, min, max, first, last); a day 19 (count, peak ms, start ms, end ms, then the same 15).
-- Slot i of a block holds hour/day (block * size + i); a slot of zeros (count 0) is empty.
-- A day is composed of its pieces in time order: its UTC hours (their records), and, where the zone's
-- offset is not a whole hour (Asia/Kolkata, Australia/Adelaide, ...), the parts of the hours at its
-- two edges (from the raw readings). Count, min, max, first, last and the peak (the first piece with
-- the highest wh_generated: its first reading at that value) are those of the readings; a day's sum
-- is its pieces' sums added in time order (each piece's own sum in time order): the same sum a
-- query of day buckets over the hours gives, within the last bits of the readings added in order.
-- An hour or day that starts before the raw window (newest - retention) is left as it is: its older
-- readings are gone, so it cannot be recomputed (but one without a record yet, a backfill near the
-- window's start, gets the rollup of its visible readings; such a day, of its hours' records).
-- Returns {hours written, days written, {hour, generation sum, ...}, {day, generation sum, length ms,
-- ...}, hours extended (by the fast path)}: with ARGV[13] '' (ingest), the touched hours' sums of
-- their visible readings (in time order, as the hour records hold them) and the sums of the local
-- days those hours touch as their day records now hold them (recomputed, or kept: begun before the
-- raw window), for the day boards and the fleet hours (services/ingest.py): one computation of a
-- site's totals per write. A day without a record is left out. With ARGV[13] '' or 'd' the history
-- meta's 'hv' is set to the series data version (KEYS[3] 'v') the day records now reflect (the
-- reconciler reads both in one script).
--@include lib/localday.lua
local HOUR = 3600000
local DAY = 86400000
local HBLOCK = 720
local DBLOCK = 360
local HREC = 136
local DREC = 152
local HFORMAT = '<' .. string.rep('d', 17)
local backend = ARGV[1]
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return {0, 0, {}, {}} end
local retention = tonumber(ARGV[3])
local history = tonumber(ARGV[4])
local nsrc = tonumber(ARGV[6])
local d0 = tonumber(ARGV[7])
local hb0, nh = tonumber(ARGV[8]), tonumber(ARGV[9])
local db0, nd = tonumber(ARGV[10]), tonumber(ARGV[11])
local ndead = tonumber(ARGV[12])
local write_hours, write_days = ARGV[13] ~= 'd', ARGV[13] ~= 'h'
local totals = ARGV[13] == ''  -- ingest: return the totals of the touched hours and days
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
if newest == nil then return {0, 0, {}, {}} end
local visible = -1
if retention > 0 then visible = newest - retention end

-- Core: the readings in [lo, hi) (an hour or less) as four parallel arrays (times and the three
-- metrics, in time order), read by ranges of their partitions: a binary search for the first and
-- then the records up to hi, never a whole partition (GET of a 1-minute day, 40 KB, into Lua costs
-- more than the rest of the script).
local REC = 28
local function core_readings(lo, hi)
  local T, G, U, C = {}, {}, {}, {}
  for day = math.floor(lo / DAY), math.floor((hi - 1) / DAY) do
    local k = 4 + day - d0
    if k < 4 or k > 3 + nsrc then
      return error('history_set: the partition of UTC day ' .. day .. ' is not declared')
    end
    local n = redis.call('STRLEN', KEYS[k]) / REC
    local base = day * DAY
    local a, b = 0, n  -- the first record whose time is >= lo
    while a < b do
      local mid = math.floor((a + b) / 2)
      local off = struct.unpack('<I4', redis.call('GETRANGE', KEYS[k], mid * REC, mid * REC + 3))
      if base + off < lo then a = mid + 1 else b = mid end
    end
    while a < n do
      local m = math.min(n - a, 64)
      local chunk = redis.call('GETRANGE', KEYS[k], a * REC, (a + m) * REC - 1)
      for p = 1, m * REC, REC do
        local off, g, u, c = struct.unpack('<I4ddd', chunk, p)
        if base + off >= hi then a = n; break end
        T[#T + 1], G[#G + 1], U[#U + 1], C[#C + 1] = base + off, g, u, c
      end
      a = a + m
    end
  end
  return T, G, U, C
end

-- {count, peak ms, then sum (in time order), min, max, first, last of each metric} of readings
-- given as parallel arrays, or nil without readings; the peak: the first reading at the max.
local function reduce(T, G, U, C)
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

-- RedisTimeSeries: a few samples cross into Lua (3 raw ranges); more are reduced by the module
-- itself (one bucket of hi - lo aligned at lo, sums in time order too; the peak: the first sample
-- at the max), 17 calls whose cost hardly grows with the samples, where converting the samples
-- to Lua would (about 0.5 us each).
local TS_RAW_MAX = 16
local function num(v)  -- the module replies with a status (RESP2) or a double (RESP3)
  if type(v) == 'table' then v = v.ok or v.double end
  return tonumber(v)
end
local function ts_rollup(lo, hi)
  local from, to, width = string.format('%d', lo), string.format('%d', hi - 1), string.format('%d', hi - lo)
  local function aggregate(k, aggregation)
    local r = redis.pcall('TS.RANGE', KEYS[k], from, to, 'ALIGN', from, 'AGGREGATION', aggregation, width)
    if type(r) ~= 'table' or not r[1] then return nil end
    return num(r[1][2])
  end
  local n = aggregate(4, 'count')
  if not n or n == 0 then return nil end
  if n <= TS_RAW_MAX then
    local T, V = {}, {}
    for m = 1, 3 do
      local r = redis.call('TS.RANGE', KEYS[3 + m], from, to)
      V[m] = {}
      for i = 1, #r do V[m][i] = num(r[i][2]) end
      if m == 1 then for i = 1, #r do T[i] = tonumber(r[i][1]) end end
    end
    return reduce(T, V[1], V[2], V[3])
  end
  local out = {n, 0}
  for m = 1, 3 do
    for _, aggregation in ipairs({'sum', 'min', 'max', 'first', 'last'}) do
      out[#out + 1] = aggregate(3 + m, aggregation)
    end
  end
  local peak = out[5]
  local at = redis.call('TS.RANGE', KEYS[4], from, to, 'FILTER_BY_VALUE', string.format('%.17g', peak),
    string.format('%.17g', peak), 'COUNT', 1)
  out[2] = tonumber(at[1][1])
  return out
end

-- The rollup of the visible readings in [lo, hi) (see reduce), or nil without readings.
local function rollup(lo, hi)
  if lo < visible then lo = visible end
  if hi <= lo then return nil end
  if backend ~= 'core' then return ts_rollup(lo, hi) end
  return reduce(core_readings(lo, hi))
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

local meta = redis.call('HMGET', KEYS[1], 'newest', 'lh', 'hh', 'ld', 'hd', 'hv')

-- The append fast path (see the header): an ingest call whose readings all follow the newest one
-- rolled up, right after the one write since the last rollup (the series' 'pv', the data version
-- before this write, is the 'hv' the rollups reflect).
local rolled = tonumber(meta[1])
local appending = false
if totals and ARGV[14] and meta[6] and rolled and tonumber(ARGV[14]) > rolled then
  appending = redis.call('HGET', KEYS[3], 'pv') == meta[6]
end
local TS_APPEND_MAX = 64

-- The readings in [lo, hi) as four parallel arrays (in time order), or nil if there are more than
-- TS_APPEND_MAX of them in a RedisTimeSeries series (the full path is as cheap then).
local function new_readings(lo, hi)
  if backend == 'core' then return core_readings(lo, hi) end
  local from, to = string.format('%d', lo), string.format('%d', hi - 1)
  local T, V = {}, {}
  for m = 1, 3 do
    local r = redis.call('TS.RANGE', KEYS[3 + m], from, to, 'COUNT', TS_APPEND_MAX + 1)
    if #r > TS_APPEND_MAX then return nil end
    V[m] = {}
    for i = 1, #r do V[m][i] = num(r[i][2]) end
    if m == 1 then for i = 1, #r do T[i] = tonumber(r[i][1]) end end
  end
  return T, V[1], V[2], V[3]
end

-- The record of the hour at slot offset of block KEYS[k] (begun at start, inside the raw window)
-- extended by the readings after the newest one rolled up, in time order, as reduce would go on
-- from the stored record (the same bytes as a recomputation); nil: take the full path.
local function extend(k, offset, start)
  if not appending or rolled < start then return nil end  -- a new hour: read whole anyway
  local data = redis.call('GETRANGE', KEYS[k], offset, offset + HREC - 1)
  if #data < HREC then return nil end
  local rec = {struct.unpack(HFORMAT, data)}
  rec[18] = nil  -- struct.unpack's next position
  if rec[1] == 0 then return nil end
  local T, G, U, C = new_readings(rolled + 1, start + HOUR)
  if T == nil or #T == 0 then return nil end
  for i = 1, #T do
    rec[1] = rec[1] + 1
    if G[i] > rec[5] then rec[2] = T[i] end
    local b = 3
    for _, v in ipairs({G[i], U[i], C[i]}) do
      rec[b] = rec[b] + v
      if v < rec[b + 1] then rec[b + 1] = v end
      if v > rec[b + 2] then rec[b + 2] = v end
      rec[b + 4] = v
      b = b + 5
    end
  end
  return rec
end
local hours_extended = 0
local function widen(lo_field, hi_field, lo_cur, hi_cur, block)
  if lo_cur == nil or block < lo_cur then redis.call('HSET', KEYS[1], lo_field, block) end
  if hi_cur == nil or block > hi_cur then redis.call('HSET', KEYS[1], hi_field, block) end
end
local horizon = -1  -- nothing starting before it is kept
if history > 0 then horizon = newest - history end

local hours_written = 0
local hour_sums, day_sums = {}, {}
local lh, hh = tonumber(meta[2]), tonumber(meta[3])
if write_hours then
  for h in string.gmatch(ARGV[5], '%d+') do
    local hour = tonumber(h)
    local start = hour * HOUR
    local block = math.floor(hour / HBLOCK)
    local k = HKEY0 + 1 + block - hb0
    local offset = (hour - block * HBLOCK) * HREC
    if start >= horizon and k > HKEY0 and k <= DKEY0 and (start >= visible or empty(k, offset)) then
      local record = start >= visible and extend(k, offset, start) or nil
      if record then hours_extended = hours_extended + 1 else record = rollup(start, start + HOUR) end
      put(k, offset, HREC, record, HBLOCK * HREC)
      if totals and record then
        hour_sums[#hour_sums + 1] = hour
        hour_sums[#hour_sums + 1] = string.format('%.17g', record[3])
      end
      if record then
        widen('lh', 'hh', lh, hh, block)
        lh, hh = math.min(lh or block, block), math.max(hh or block, block)
      end
      hours_written = hours_written + 1
    elseif totals and start >= horizon then  -- kept (begun before the raw window): its visible sum
      local record = rollup(start, start + HOUR)
      if record then
        hour_sums[#hour_sums + 1] = hour
        hour_sums[#hour_sums + 1] = string.format('%.17g', record[3])
      end
    end
  end
end

-- The records of hours first .. stop - 1 that hold readings, in order, from the hour blocks.
local function hour_records(first, stop)
  local out = {}
  local hour = first
  while hour < stop do
    local block = math.floor(hour / HBLOCK)
    local k = HKEY0 + 1 + block - hb0
    if k <= HKEY0 or k > DKEY0 then
      return error('history_set: the hour block ' .. block .. ' is not declared')
    end
    local last = math.min(stop, (block + 1) * HBLOCK)
    local base = (hour - block * HBLOCK) * HREC
    local data = redis.call('GETRANGE', KEYS[k], base, (last - block * HBLOCK) * HREC - 1)
    for p = 1, #data - HREC + 1, HREC do
      if struct.unpack('<d', data, p) > 0 then out[#out + 1] = {struct.unpack(HFORMAT, data, p)} end
    end
    hour = last
  end
  return out
end

-- A local day [start, stop) from its pieces in time order (see the header): its record without the
-- bounds, or nil without readings.
local function compose(start, stop)
  local pieces = {}
  local a, b = math.ceil(start / HOUR), math.floor(stop / HOUR)  -- its whole hours: a .. b - 1
  if a > b then
    pieces[1] = rollup(start, stop)  -- a day shorter than an hour, inside one
  else
    pieces[1] = a * HOUR > start and rollup(start, a * HOUR) or false
    for _, r in ipairs(hour_records(a, b)) do pieces[#pieces + 1] = r end
    pieces[#pieces + 1] = b * HOUR < stop and rollup(b * HOUR, stop) or false
  end
  local out
  for _, p in ipairs(pieces) do
    if p then
      if not out then
        out = {p[1], p[2]}
        for i = 3, 17 do out[i] = p[i] end
        out[3] = 0.0 + p[3]; out[8] = 0.0 + p[8]; out[13] = 0.0 + p[13]
      else
        out[1] = out[1] + p[1]
        if p[5] > out[5] then out[2] = p[2] end
        for i = 3, 13, 5 do  -- each metric: sum, min, max, (first stays), last
          out[i] = out[i] + p[i]
          if p[i + 1] < out[i + 1] then out[i + 1] = p[i + 1] end
          if p[i + 2] > out[i + 2] then out[i + 2] = p[i + 2] end
          out[i + 4] = p[i + 4]
        end
      end
    end
  end
  return out
end

-- Local days in the site's zone (its 'tzt'; UTC days without one).
local days_written = 0
if write_days then
  local tzt = redis.call('HGET', KEYS[2], 'tzt')
  local days, seen = {}, {}
  for h in string.gmatch(ARGV[5], '%d+') do
    local start = tonumber(h) * HOUR
    for _, t in ipairs({start, start + HOUR - 1}) do
      local d = local_day(t, tzt)
      if not seen[d] then seen[d] = true; days[#days + 1] = d end
    end
  end
  local ld, hd = tonumber(meta[4]), tonumber(meta[5])
  for _, day in ipairs(days) do
    local start, stop = local_day_bounds(day, tzt)
    local block = math.floor(day / DBLOCK)
    local k = DKEY0 + 1 + block - db0
    local offset = (day - block * DBLOCK) * DREC
    if start >= horizon and k > DKEY0 and k <= DEAD0 and (start >= visible or empty(k, offset)) then
      local record = compose(start, stop)
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
      if totals and record then
        day_sums[#day_sums + 1] = day
        day_sums[#day_sums + 1] = string.format('%.17g', record[5])
        day_sums[#day_sums + 1] = string.format('%d', stop - start)
      end
    elseif totals and start >= horizon and k > DKEY0 and k <= DEAD0 and not empty(k, offset) then
      -- kept whole (begun before the raw window): the board takes the day as its record holds it
      local kept = {struct.unpack('<' .. string.rep('d', 19), redis.call('GETRANGE', KEYS[k], offset,
        offset + DREC - 1))}
      day_sums[#day_sums + 1] = day
      day_sums[#day_sums + 1] = string.format('%.17g', kept[5])
      day_sums[#day_sums + 1] = string.format('%d', stop - start)
    end
  end
  local series_v = redis.call('HGET', KEYS[3], 'v')
  if series_v then redis.call('HSET', KEYS[1], 'hv', series_v) end
end

if tonumber(meta[1]) == nil or newest > tonumber(meta[1]) then redis.call('HSET', KEYS[1], 'newest', string.format('%d', newest)) end
for i = DEAD0 + 1, DEAD0 + ndead do redis.call('DEL', KEYS[i]) end
return {hours_written, days_written, hour_sums, day_sums, hours_extended}
