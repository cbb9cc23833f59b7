-- Set sites' absolute generation in one clock hour of the fleet rollup; newest data version wins (a
-- stale, repeated or retried update changes nothing), and the hour's total follows by (new - old).
-- KEYS[1] the hour's total (string), KEYS[2] its bucket index (set of bucket numbers),
-- KEYS[3..] bucket hashes 'fleet:gen:{fh:HOUR}:s:B' (site -> '<dd' version, Wh); one hash tag.
-- ARGV[1] expire-at (unix seconds) for the keys;
-- ARGV[2] '' or a version V: then the given buckets' entries of sites not named below whose version is
--         older than V are removed (the reconciler's pass: V was taken before it read the data);
-- then groups of four: bucket key index (3..#KEYS), site id, version, Wh ('' removes the entry).
-- Returns the hour's total after the update, as text.
local total_key, index_key = KEYS[1], KEYS[2]
local delta = 0.0
local named = {}

local function bucket_of(k)
  return string.match(KEYS[k], ':s:(%d+)$')
end

for i = 3, #ARGV, 4 do
  local k, site, version, wh = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  named[k] = named[k] or {}
  named[k][site] = true
  local old = redis.call('HGET', KEYS[k], site)
  local old_version, old_wh = -1, 0.0
  if old then old_version, old_wh = struct.unpack('<dd', old) end
  if version >= old_version then
    if wh == '' then
      if old then
        redis.call('HDEL', KEYS[k], site)
        delta = delta - old_wh
      end
    else
      local value = tonumber(wh)
      redis.call('HSET', KEYS[k], site, struct.pack('<dd', version, value))
      redis.call('SADD', index_key, bucket_of(k))
      delta = delta + value - old_wh
    end
  end
end

if ARGV[2] ~= '' then
  local before = tonumber(ARGV[2])
  for k = 3, #KEYS do
    local entries = redis.call('HGETALL', KEYS[k])
    for j = 1, #entries, 2 do
      local version, wh = struct.unpack('<dd', entries[j + 1])
      if version < before and not (named[k] and named[k][entries[j]]) then
        redis.call('HDEL', KEYS[k], entries[j])
        delta = delta - wh
      end
    end
  end
end

for k = 3, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 0 then redis.call('SREM', index_key, bucket_of(k)) end
end
if redis.call('EXISTS', index_key) == 0 then
  redis.call('DEL', total_key)
  return '0'
end
local total = (tonumber(redis.call('GET', total_key)) or 0) + delta
local text = string.format('%.17g', total)
redis.call('SET', total_key, text)
for k = 1, #KEYS do
  redis.call('EXPIREAT', KEYS[k], ARGV[1])
end
return text
