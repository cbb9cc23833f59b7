-- Core backend: delete every key holding one site's readings.
-- KEYS[1] series meta hash (fields lo, hi: the first and last partition day).
-- ARGV[1] partition key prefix. Returns the number of keys deleted.
local range = redis.call('HMGET', KEYS[1], 'lo', 'hi')
local deleted = 0
if range[1] and range[2] then
  for day = tonumber(range[1]), tonumber(range[2]) do
    deleted = deleted + redis.call('DEL', ARGV[1] .. day)
  end
end
return deleted + redis.call('DEL', KEYS[1])
