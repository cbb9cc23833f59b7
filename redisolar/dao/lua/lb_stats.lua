-- Statistics of one sorted set, computed on the server.
-- KEYS[1] the sorted set.
-- Returns {count, highest, lowest, sum} with the scores as strings ({0} when empty).
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then
  return {0}
end
local sum = 0
local cursor = 0
local chunk = 1000
while cursor < count do
  local scores = redis.call('ZRANGE', KEYS[1], cursor, cursor + chunk - 1, 'WITHSCORES')
  for i = 2, #scores, 2 do
    sum = sum + tonumber(scores[i])
  end
  cursor = cursor + chunk
end
local lowest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local highest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
return {count, highest, lowest, string.format('%.17g', sum)}
