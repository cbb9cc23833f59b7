-- Where a (score, member) stands in one leaderboard part, and its neighbours there: a sharded board's
-- rank is the sum over its parts of the members ordered before it (FLEET_SHARDS, leaderboard_dao.py).
-- The order is ZREVRANGE's: score descending, equal scores by member descending, byte-wise (compared
-- here byte by byte: Lua's string '<' follows the server's locale).
-- KEYS[1] the board part (sorted set).
-- ARGV[1] the score (text that reads back as the exact double), ARGV[2] the member, ARGV[3] context c.
-- Returns {p, {member, score, ...}}: p = how many members are ordered before (score, member) (the
-- member itself, if present, is not counted: p is its ZREVRANK), then the members of ranks
-- max(0, p - c) .. p + c with their scores. O(log(N)^2): a binary search among the equal scores.
local key, score, member, context = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])

local function greater(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local lo = redis.call('ZCOUNT', key, '(' .. score, '+inf')
local hi = lo + redis.call('ZCOUNT', key, score, score)
while lo < hi do -- the first rank among the ties whose member is not ordered before ours
  local mid = math.floor((lo + hi) / 2)
  if greater(redis.call('ZREVRANGE', key, mid, mid)[1], member) then lo = mid + 1 else hi = mid end
end
return {lo, redis.call('ZREVRANGE', key, math.max(0, lo - context), lo + context, 'WITHSCORES')}
