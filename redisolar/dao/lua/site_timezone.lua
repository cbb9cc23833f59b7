-- site_timezone.lua: give a site hash the time zone derived from its coordinates, if it has none
-- (the migration of sites stored before sites had one: redisolar/dao/site_timezones.py). One slot:
-- {site:ID}. Only the 'timezone' field changes: no index holds it, so the version stays.
--
-- KEYS[1]  the site hash
-- ARGV[1]  the zone (an IANA name)
-- ARGV[2]  the 'lat' field the zone was derived from, as read ("" when it had none)
-- ARGV[3]  the 'lng' field, as read ("" when it had none)
-- Returns 1 if it set the zone; 0 if the hash is gone, already has a zone (a write since the read
-- gave it one), or holds other coordinates than those read (the caller reads again)

local site = KEYS[1]
if redis.call('EXISTS', site) == 0 or redis.call('HEXISTS', site, 'timezone') == 1 then
  return 0
end
local lat = redis.call('HGET', site, 'lat') or ''
local lng = redis.call('HGET', site, 'lng') or ''
if lat ~= ARGV[2] or lng ~= ARGV[3] then
  return 0
end
redis.call('HSET', site, 'timezone', ARGV[1])
return 1
