-- zset_set.lua: set or remove members' scores in a leaderboard and keep its running sum.
--
-- The running sum (KEYS[2]) is incremented only while it is known: it exists, or the board was
-- empty. A missing sum on a non-empty board means "unknown"; readers recompute it (zset_sum.lua).
--
-- KEYS[1]    the sorted set             KEYS[2]  its running sum (string)
-- ARGV       member, score pairs; an empty score removes the member.
-- Returns the number of members whose score changed.

local known = redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[1]) == 0
local members = {}
for i = 1, #ARGV, 2 do members[#members + 1] = ARGV[i] end
local old = redis.call('ZMSCORE', KEYS[1], unpack(members))
local delta, changed = 0.0, 0
for n = 1, #members do
  local score = ARGV[2 * n]
  local before = tonumber(old[n])
  if score == '' then
    if before then
      redis.call('ZREM', KEYS[1], members[n])
      delta = delta - before
      changed = changed + 1
    end
  else
    redis.call('ZADD', KEYS[1], score, members[n])
    delta = delta + tonumber(score) - (before or 0)
    if before ~= tonumber(score) then changed = changed + 1 end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
elseif known then
  redis.call('INCRBYFLOAT', KEYS[2], string.format('%.17g', delta))
end
return changed
