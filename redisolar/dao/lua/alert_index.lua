-- alert_index.lua: the fleet's index of open and resolved alerts (one {alerts} slot).
--
-- KEYS[1]  alerts:{alerts}:open      sorted set: SITE:ALERT by the ms it opened
-- KEYS[2]  alerts:{alerts}:resolved  sorted set: SITE:ALERT by the ms it resolved (capped)
-- ARGV     'open' or 'resolve', member, score (ms), how many resolved alerts the index keeps
-- Absolute: running it again changes nothing. Returns 1.

if ARGV[1] == 'open' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))
end
return 1
