-- RedisTimeSeries backend: upsert one site's readings into its four series, atomically.
-- KEYS[1..4] series wh_generated, wh_used, temp_c, net_generation; KEYS[5] series meta hash (field v);
-- KEYS[6] the site hash (for its capacity).
-- ARGV[1] retention in ms (0 = keep everything), ARGV[2] site id, ARGV[3] key prefix (a label),
-- then five arguments per reading: ms timestamp, generated, used, temperature, net; sorted by
-- timestamp, timestamps unique.
-- Returns {version, capacity or '', day, generation sum of that day, ...} for every day touched, or
-- the error 'RETENTION <oldest allowed ms>' without writing anything.
local DAY = 86400000
local METRICS = {'wh_generated', 'wh_used', 'temp_c', 'net_generation'}
local retention = tonumber(ARGV[1])
local first_ts = tonumber(ARGV[4])
local last_ts = tonumber(ARGV[#ARGV - 4])

local newest = last_ts
if redis.call('EXISTS', KEYS[1]) == 1 then
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

for m = 1, 4 do
  if redis.call('EXISTS', KEYS[m]) == 0 then
    redis.call('TS.CREATE', KEYS[m], 'RETENTION', ARGV[1], 'DUPLICATE_POLICY', 'LAST',
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
for i = 4, #ARGV, 5 do
  local ts = ARGV[i]
  for m = 1, 4 do
    args[#args + 1] = KEYS[m]
    args[#args + 1] = ts
    args[#args + 1] = ARGV[i + m]
  end
  if #args >= 3000 then flush() end
  local day = math.floor(tonumber(ts) / DAY)
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
