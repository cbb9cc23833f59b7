-- zset_sum.lua: the exact sum of a sorted set's scores, stored as its running sum.
--
-- Every leaderboard keeps the sum of its scores in a companion string (KEYS[2]), updated by each
-- write; this script recomputes it from the scores with Neumaier's compensated summation (no drift
-- with the number or order of members) and stores it. O(members): for reconciling, and for a board
-- that has no running sum yet.
--
-- KEYS[1]    the sorted set             KEYS[2]  its running sum (string)
-- Returns the sum as a string ("%.17g", which reads back as the same double).

local sum, compensation = 0.0, 0.0
local total = redis.call('ZCARD', KEYS[1])
for start = 0, total - 1, 1000 do
  local reply = redis.call('ZRANGE', KEYS[1], start, start + 999, 'WITHSCORES')
  for i = 2, #reply, 2 do
    local x = tonumber(reply[i])
    local t = sum + x
    if math.abs(sum) >= math.abs(x) then
      compensation = compensation + ((sum - t) + x)
    else
      compensation = compensation + ((x - t) + sum)
    end
    sum = t
  end
end
local result = string.format('%.17g', sum + compensation)
local ttl = redis.call('PTTL', KEYS[1])
if total == 0 then
  redis.call('DEL', KEYS[2])
elseif ttl > 0 then
  redis.call('SET', KEYS[2], result, 'PX', ttl)
else
  redis.call('SET', KEYS[2], result)
end
return result
