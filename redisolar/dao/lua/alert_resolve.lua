-- alert_resolve.lua: resolve a rule's open alert at a site (nothing when none is open).
--
-- KEYS[1]  alerts:{site:ID}          hash: alert id -> alert JSON
-- KEYS[2]  alerts:{site:ID}:open     hash: rule id -> open alert id
-- ARGV     rule id, resolved at (ISO 8601), the values that resolved it (JSON object), why
-- Returns the resolved alert's JSON, or false when the rule had no open alert.

local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local stored = redis.call('HGET', KEYS[1], id)
if not stored then return false end
local alert = cjson.decode(stored)
alert['state'] = 'resolved'
alert['resolved_at'] = ARGV[2]
alert['resolved_values'] = cjson.decode(ARGV[3])
alert['resolution'] = ARGV[4]
local encoded = cjson.encode(alert)
redis.call('HSET', KEYS[1], id, encoded)
return encoded
