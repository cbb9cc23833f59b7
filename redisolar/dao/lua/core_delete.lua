-- Core backend: delete every key holding one site's readings.
-- KEYS[1] series meta hash (fields lo, hi: the first and last partition day), KEYS[2..] the partitions
-- 'core:{site:ID}:d:DAY' of consecutive days from ARGV[1] (the caller read lo and hi first).
-- ARGV[1] the day of KEYS[2] ('' when none is declared).
-- Returns the number of keys deleted, or the error 'RANGE' without deleting anything when lo..hi is
-- no longer within the declared days (a write moved them meanwhile: read them again and retry).
local range = redis.call('HMGET', KEYS[1], 'lo', 'hi')
local lo, hi = tonumber(range[1]), tonumber(range[2])
local first = tonumber(ARGV[1])
if lo and hi and lo <= hi then
  if not first or lo < first or hi > first + #KEYS - 2 then return redis.error_reply('RANGE') end
end
local deleted = 0
for k = 2, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[k])
end
return deleted + redis.call('DEL', KEYS[1])
