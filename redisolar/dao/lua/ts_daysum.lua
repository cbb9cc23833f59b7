-- RedisTimeSeries backend: a site's generation sum over [start, end) with the version of its data.
-- KEYS[1] the wh_generated series, KEYS[2] series meta hash (field v).
-- ARGV[1] start ms, ARGV[2] end ms (exclusive). Returns {version, sum}.
local version = tonumber(redis.call('HGET', KEYS[2], 'v')) or 0
if redis.call('EXISTS', KEYS[1]) == 0 then return {version, '0'} end
local sums = redis.call('TS.RANGE', KEYS[1], ARGV[1], string.format('%d', tonumber(ARGV[2]) - 1),
  'AGGREGATION', 'sum', string.format('%d', tonumber(ARGV[2]) - tonumber(ARGV[1])), 'ALIGN', 'start')
local total = 0
for _, s in ipairs(sums) do
  local v = s[2]
  if type(v) == 'table' then v = v.ok or v.double end -- the module replies with a status
  total = total + tonumber(v)
end
return {version, string.format('%.17g', total)}
