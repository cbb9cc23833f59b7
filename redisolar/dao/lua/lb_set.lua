-- Set daily leaderboard scores, newest data version wins (retries and reordering never go backwards).
-- KEYS[1] generation board (zset), KEYS[2] efficiency board (zset), KEYS[3] versions (hash),
-- KEYS[4], KEYS[5] the running sums of the two boards (see zset_set.lua: kept only while known);
--   all five share the hash tag {lb:DAY} (sharded: {lb:DAY:k}).
-- ARGV[1] expire-at (unix seconds) for the keys;
-- then groups of four: member, version, generation score, efficiency score ('' = no capacity known).
-- Returns {the number of members whose scores were set, 1 if this call created the day's board (its
-- versions hash did not exist: the caller adds the day to the index of days, lb:days) else 0}.
local created = redis.call('EXISTS', KEYS[3]) == 0
local gen_known = redis.call('EXISTS', KEYS[4]) == 1 or redis.call('ZCARD', KEYS[1]) == 0
local eff_known = redis.call('EXISTS', KEYS[5]) == 1 or redis.call('ZCARD', KEYS[2]) == 0
local members = {}
for i = 2, #ARGV, 4 do members[#members + 1] = ARGV[i] end
local stored = redis.call('HMGET', KEYS[3], unpack(members))
local old_gen = redis.call('ZMSCORE', KEYS[1], unpack(members))
local old_eff = redis.call('ZMSCORE', KEYS[2], unpack(members))
local gen, eff, gone, versions = {}, {}, {}, {}
local gen_delta, eff_delta = 0.0, 0.0
local changed = 0
for n = 1, #members do
  local i = 2 + (n - 1) * 4
  if tonumber(ARGV[i + 1]) > (tonumber(stored[n]) or -1) then
    changed = changed + 1
    gen[#gen + 1] = ARGV[i + 2]
    gen[#gen + 1] = ARGV[i]
    gen_delta = gen_delta + tonumber(ARGV[i + 2]) - (tonumber(old_gen[n]) or 0)
    if ARGV[i + 3] == '' then
      if old_eff[n] then
        gone[#gone + 1] = ARGV[i]
        eff_delta = eff_delta - tonumber(old_eff[n])
      end
    else
      eff[#eff + 1] = ARGV[i + 3]
      eff[#eff + 1] = ARGV[i]
      eff_delta = eff_delta + tonumber(ARGV[i + 3]) - (tonumber(old_eff[n]) or 0)
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
  if gen_known then redis.call('INCRBYFLOAT', KEYS[4], string.format('%.17g', gen_delta)) end
  if eff_known and redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[5], string.format('%.17g', eff_delta))
  end
end
for k = 1, 5 do
  redis.call('EXPIREAT', KEYS[k], ARGV[1])
end
if created and changed > 0 then return {changed, 1} end
return {changed, 0}
