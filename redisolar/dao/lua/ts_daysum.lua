-- RedisTimeSeries backend: a site's generation over [start, end) with the version of its data.
-- KEYS[1] the wh_generated series, KEYS[2] series meta hash (field v).
-- ARGV[1] start ms, ARGV[2] end ms (exclusive). Returns {version, sum, count}.
local version = tonumber(redis.call('HGET', KEYS[2], 'v')) or 0
if redis.call('EXISTS', KEYS[1]) == 0 then return {version, '0', 0} end
local last = string.format('%d', tonumber(ARGV[2]) - 1)
local width = string.format('%d', tonumber(ARGV[2]) - tonumber(ARGV[1]))
local function total(aggregation)
  local buckets = redis.call('TS.RANGE', KEYS[1], ARGV[1], last, 'AGGREGATION', aggregation, width,
    'ALIGN', 'start')
  local v = buckets[1] and buckets[1][2] or '0'
  if type(v) == 'table' then v = v.ok or v.double end -- the module replies with a status
  return v
end
return {version, total('sum'), tonumber(total('count'))}
