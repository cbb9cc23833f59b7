-- Set daily leaderboard scores, newest data version wins (retries and reordering never go backwards).
-- KEYS[1] generation board (zset), KEYS[2] efficiency board (zset), KEYS[3] versions (hash);
--   all three share the hash tag {lb:DAY}.
-- ARGV[1] expire-at (unix seconds) for the three keys;
-- then groups of four: member, version, generation score, efficiency score ('' = no capacity known).
-- Returns the number of members whose scores changed.
local changed = 0
for i = 2, #ARGV, 4 do
  local member = ARGV[i]
  local version = tonumber(ARGV[i + 1])
  local stored = tonumber(redis.call('HGET', KEYS[3], member) or '-1')
  if version > stored then
    redis.call('ZADD', KEYS[1], ARGV[i + 2], member)
    if ARGV[i + 3] == '' then
      redis.call('ZREM', KEYS[2], member)
    else
      redis.call('ZADD', KEYS[2], ARGV[i + 3], member)
    end
    redis.call('HSET', KEYS[3], member, ARGV[i + 1])
    changed = changed + 1
  end
end
for k = 1, 3 do
  redis.call('EXPIREAT', KEYS[k], ARGV[1])
end
return changed
