-- Set daily leaderboard scores, newest data version wins (retries and reordering never go backwards).
-- KEYS[1] generation board (zset), KEYS[2] efficiency board (zset), KEYS[3] versions (hash),
-- KEYS[4], KEYS[5] the running sums of the two boards (see zset_set.lua: kept only while known);
--   all five share the hash tag {lb:DAY} (sharded: {lb:DAY:k}).
-- ARGV[1] expire-at (unix seconds) for the keys;
-- ARGV[2] N > 0: report the rank moves (below) into, out of or within the top N; 0: none (the
--   reconciler; a board split in parts);
-- then groups of four: member, version, generation score, efficiency score ('' = no capacity known).
-- Returns {the number of members whose scores were set, 1 if this call created the day's board (its
-- versions hash did not exist: the caller adds the day to the index of days, lb:days) else 0,
-- then, with ARGV[2] = N > 0, five values per rank move of a member whose score was set, when its
-- rank before or after is among the top N: member, board ('generation' or 'efficiency'), its 0-based
-- ZREVRANK before and after this call (-1: not on the board), its new score ('' when it left the
-- board)}. Two ZREVRANKs per board and member set (O(log N)).
local created = redis.call('EXISTS', KEYS[3]) == 0
local gen_known = redis.call('EXISTS', KEYS[4]) == 1 or redis.call('ZCARD', KEYS[1]) == 0
local eff_known = redis.call('EXISTS', KEYS[5]) == 1 or redis.call('ZCARD', KEYS[2]) == 0
local top = tonumber(ARGV[2])
local ranks = top > 0
local members = {}
for i = 3, #ARGV, 4 do members[#members + 1] = ARGV[i] end
local stored = redis.call('HMGET', KEYS[3], unpack(members))
local old_gen = redis.call('ZMSCORE', KEYS[1], unpack(members))
local old_eff = redis.call('ZMSCORE', KEYS[2], unpack(members))
local gen, eff, gone, versions, set = {}, {}, {}, {}, {}
local gen_delta, eff_delta = 0.0, 0.0
local changed = 0
for n = 1, #members do
  local i = 3 + (n - 1) * 4
  if tonumber(ARGV[i + 1]) > (tonumber(stored[n]) or -1) then
    changed = changed + 1
    set[#set + 1] = i
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
local function ranks_of(member)
  return redis.call('ZREVRANK', KEYS[1], member) or -1, redis.call('ZREVRANK', KEYS[2], member) or -1
end
local before = {}
if ranks then
  for k, i in ipairs(set) do before[k] = {ranks_of(ARGV[i])} end
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
local reply = {changed, (created and changed > 0) and 1 or 0}
local function moved(old, new)
  return old ~= new and ((old >= 0 and old < top) or (new >= 0 and new < top))
end
if ranks then
  for k, i in ipairs(set) do
    local gen_after, eff_after = ranks_of(ARGV[i])
    if moved(before[k][1], gen_after) then
      for _, v in ipairs({ARGV[i], 'generation', before[k][1], gen_after, ARGV[i + 2]}) do
        reply[#reply + 1] = v
      end
    end
    if moved(before[k][2], eff_after) then
      for _, v in ipairs({ARGV[i], 'efficiency', before[k][2], eff_after, ARGV[i + 3]}) do
        reply[#reply + 1] = v
      end
    end
  end
end
return reply
