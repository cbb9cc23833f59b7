-- RedisTimeSeries backend: upsert one site's readings into its four series, atomically.
-- KEYS[1..4] series wh_generated, wh_used, temp_c, net_generation; KEYS[5] series meta hash (field v);
-- KEYS[6] the site hash (for its capacity).
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- ARGV[4] the readings: 32-byte records '<dddd' (ms timestamp, generated, used, temperature),
--         sorted by timestamp, timestamps unique. Net generation is generated - used. Numbers are
--         passed to the module as Lua numbers: Redis turns them into round-trip exact text.
-- Returns {version, capacity or '', day, generation sum of that day, ...} for every day touched, or
-- the error 'RETENTION <oldest allowed ms>' without writing anything.
local DAY = 86400000
local METRICS = {'wh_generated', 'wh_used', 'temp_c', 'net_generation'}
local retention = tonumber(ARGV[1])
local data = ARGV[4]
local first_ts = struct.unpack('<d', data, 1)
local last_ts = struct.unpack('<d', data, #data - 31)

local newest = last_ts
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists then
  local latest = redis.call('TS.GET', KEYS[1])
  if latest[1] and tonumber(latest[1]) > newest then newest = tonumber(latest[1]) end
end
local cutoff = -1
if retention > 0 then
  cutoff = newest - retention
  if first_ts < cutoff then
    return redis.error_reply(string.format('RETENTION %d', cutoff))
  end
end

-- The four series are created together, here, so the first one tells about all of them.
if not exists then
  for m = 1, 4 do
    redis.call('TS.CREATE', KEYS[m], 'RETENTION', ARGV[1], 'DUPLICATE_POLICY', 'LAST', 'CHUNK_SIZE', 512,
      'LABELS', 'app', ARGV[3], 'site_id', ARGV[2], 'metric', METRICS[m], 'type', 'meter_reading')
  end
end

local args = {}
local function flush()
  if #args > 0 then
    local replies = redis.call('TS.MADD', unpack(args))
    for _, r in ipairs(replies) do
      if type(r) == 'table' and r.err then return redis.error_reply(r.err) end
    end
    args = {}
  end
end
local days, seen = {}, {}
for pos = 1, #data, 32 do
  local t, g, u, c = struct.unpack('<dddd', data, pos)
  local values = {g, u, c, g - u}
  for m = 1, 4 do
    args[#args + 1] = KEYS[m]
    args[#args + 1] = t
    args[#args + 1] = values[m]
  end
  if #args >= 3000 then flush() end
  local day = math.floor(t / DAY)
  if not seen[day] then
    seen[day] = true
    days[#days + 1] = day
  end
end
flush()

local now = redis.call('TIME')
local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
local previous = tonumber(redis.call('HGET', KEYS[5], 'v'))
if previous and previous >= version then version = previous + 1 end
redis.call('HSET', KEYS[5], 'v', string.format('%d', version))

local out = {version, redis.call('HGET', KEYS[6], 'capacity') or ''}
for _, day in ipairs(days) do
  local from = math.max(day * DAY, cutoff)
  local sums = redis.call('TS.RANGE', KEYS[1], string.format('%d', from),
    string.format('%d', day * DAY + DAY - 1), 'AGGREGATION', 'sum', DAY)
  local total = (sums[1] and sums[1][2]) or '0'
  if type(total) == 'table' then total = total.ok or total.double end -- the module replies with a status
  out[#out + 1] = day
  out[#out + 1] = total
end
return out
