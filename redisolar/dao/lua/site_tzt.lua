-- site_tzt.lua: give a site hash the offset history ('tzt', localtime.encode_tzt) of its zone (the
-- migration of sites stored before 'tzt' existed: redisolar/dao/site_timezones.py). One slot:
-- {site:ID}. No index holds 'tzt', so the version stays.
--
-- KEYS[1]  the site hash
-- ARGV[1]  the zone the table was made for, as read
-- ARGV[2]  the table
-- Returns 1 if it set 'tzt'; 0 if the hash is gone or its zone is no longer ARGV[1] (a write since
-- the read changed it, and wrote its own 'tzt')

local site = KEYS[1]
if redis.call('HGET', site, 'timezone') ~= ARGV[1] then
  return 0
end
redis.call('HSET', site, 'tzt', ARGV[2])
return 1
