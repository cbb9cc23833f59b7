-- Core backend: drop a site's partitions older than its retention window that its writes could not
-- (they drop the days they declare; after a silence of more than a day older ones stay, invisible to
-- reads, with the meta hash's lo on the first of them). The reconciler runs it for such sites.
-- KEYS[1] series meta hash (fields newest, lo, hi), KEYS[2..] partitions 'core:{site:ID}:d:DAY' of
-- consecutive days from ARGV[2]. ARGV[1] retention ms (> 0), ARGV[2] the day of KEYS[2].
-- Returns the number of partitions deleted; lo moves past them.
local DAY = 86400000
local meta = redis.call('HMGET', KEYS[1], 'newest', 'lo', 'hi')
local newest, lo, hi = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
local first = tonumber(ARGV[2])
if not (newest and lo and hi) or lo < first then return 0 end
local last_dead = math.min(math.floor((newest - tonumber(ARGV[1])) / DAY) - 1, hi, first + #KEYS - 2)
local deleted = 0
for day = lo, last_dead do
  local k = 2 + day - first
  deleted = deleted + redis.call('DEL', KEYS[k])
end
if last_dead + 1 > lo then redis.call('HSET', KEYS[1], 'lo', last_dead + 1) end
return deleted
