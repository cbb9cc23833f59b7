-- alert_open.lua: open a rule's alert at a site, once: nothing changes while the rule's alert is open.
--
-- KEYS[1]  alerts:{site:ID}          hash: alert id -> alert JSON
-- KEYS[2]  alerts:{site:ID}:open     hash: rule id -> open alert id
-- KEYS[3]  alerts:{site:ID}:history  sorted set: alert id by the ms it opened
-- ARGV     rule id, alert id, alert JSON, opened ms, how many alerts the site keeps
-- Returns {1, alert id} when it opened the alert, {0, the open alert's id} when one was open already.

local open = redis.call('HGET', KEYS[2], ARGV[1])
if open then return {0, open} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
local keep = tonumber(ARGV[5])
local extra = redis.call('ZCARD', KEYS[3]) - keep
if extra > 0 then
  local still = {}
  for _, id in ipairs(redis.call('HVALS', KEYS[2])) do still[id] = true end
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, extra - 1)) do
    if not still[id] then
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[1], id)
    end
  end
end
return {1, ARGV[2]}
