-- A page of a leaderboard with its sites' fields, in one round trip.
--
-- For a standalone server only: the site hash keys are built here from ARGV and not declared in KEYS
-- (Redis Cluster would need the two-round-trip path: ZREVRANGE, then one pipeline of HMGETs).
--
-- KEYS[1]    the leaderboard (sorted set, members 'site:ID')
-- ARGV[1]    site hash key before the id   ARGV[2] site hash key after the id
-- ARGV[3]    first rank (0-based)          ARGV[4] last rank (0-based, inclusive)
-- ARGV[5..]  the site hash fields to read, in order
-- Returns {member, score, {field values}, member, score, {...}, ...}, best first.
local fields = {}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local rows = redis.call('ZRANGE', KEYS[1], ARGV[3], ARGV[4], 'REV', 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local id = string.sub(rows[i], 6)
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HMGET', ARGV[1] .. id .. ARGV[2], unpack(fields))
end
return out
