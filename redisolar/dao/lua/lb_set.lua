-- Set daily leaderboard scores, newest data version wins (retries and reordering never go backwards).
-- KEYS[1] generation board (zset), KEYS[2] efficiency board (zset), KEYS[3] versions (hash);
--   all three share the hash tag {lb:DAY}.
-- ARGV[1] expire-at (unix seconds) for the three keys;
-- then groups of four: member, version, generation score, efficiency score ('' = no capacity known).
-- Returns the number of members whose scores changed.
local members = {}
for i = 2, #ARGV, 4 do members[#members + 1] = ARGV[i] end
local stored = redis.call('HMGET', KEYS[3], unpack(members))
local gen, eff, gone, versions = {}, {}, {}, {}
local changed = 0
for n = 1, #members do
  local i = 2 + (n - 1) * 4
  if tonumber(ARGV[i + 1]) > (tonumber(stored[n]) or -1) then
    changed = changed + 1
    gen[#gen + 1] = ARGV[i + 2]
    gen[#gen + 1] = ARGV[i]
    if ARGV[i + 3] == '' then
      gone[#gone + 1] = ARGV[i]
    else
      eff[#eff + 1] = ARGV[i + 3]
      eff[#eff + 1] = ARGV[i]
    end
    versions[#versions + 1] = ARGV[i]
    versions[#versions + 1] = ARGV[i + 1]
  end
end
if changed > 0 then
  redis.call('ZADD', KEYS[1], unpack(gen))
  if #eff > 0 then redis.call('ZADD', KEYS[2], unpack(eff)) end
  if #gone > 0 then redis.call('ZREM', KEYS[2], unpack(gone)) end
  redis.call('HSET', KEYS[3], unpack(versions))
end
for k = 1, 3 do
  redis.call('EXPIREAT', KEYS[k], ARGV[1])
end
return changed
