-- Core backend: upsert one site's readings into UTC-day partitions of packed records.
-- (Writes replace a partition with SET: APPEND would leave unused spare capacity behind.)
-- A partition is a string of 28-byte records '<I4ddd' (ms offset in the day, Wh generated, Wh used,
-- temperature), sorted by offset, one record per timestamp. Net generation is derived on read.
-- KEYS[1] series meta hash (fields v, pv (the v before this write: history_set.lua's append fast
--   path), newest, lo, hi, last: 'ms gen used temp' of the newest reading),
--   KEYS[2] the site hash (its existence, its capacity), KEYS[3..] day partitions
--   'core:{site:ID}:d:DAY' (same hash tag): every UTC day of the readings, then the days the caller
--   expects the retention window to drop (the two days before its start counted from the newest
--   reading of the batch).
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] the day numbers of KEYS[3..], comma-separated,
-- ARGV[3] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique.
-- ARGV[4] '1': the site must exist (its hash), else nothing is written and the error 'NOSITE' returned.
-- Returns {version, capacity or '', newest ms}, or the error 'RETENTION <oldest allowed ms>' or 'NOSITE'
-- without writing anything. The generation totals of the touched hours and local days are computed
-- once, by history_set.lua, which follows in the same pipeline (redisolar/dao/history.py).
local DAY = 86400000
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

-- Every partition written must be declared: checked before anything is written.
for pos = 1, #data, 32 do
  local day = math.floor(struct.unpack('<d', data, pos) / DAY)
  if slot[day] == nil then return redis.error_reply('UNDECLARED partition ' .. day) end
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
  'v', string.format('%d', version), 'pv', meta[4] or '0')
if last_ts >= newest then -- the newest reading itself, for reads of the latest (no partition read)
  local t, g, u, c = struct.unpack('<dddd', data, #data - 31)
  redis.call('HSET', KEYS[1], 'last', string.format('%d %.17g %.17g %.17g', t, g, u, c))
end

return {version, redis.call('HGET', KEYS[2], 'capacity') or '', string.format('%d', newest)}
