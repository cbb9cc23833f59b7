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

-- Rows are applied per bucket hash: one HMGET of the named sites, one HSET of the entries set, one HDEL
-- of those removed, one SADD (a row reads the value a previous row of the same site left).
local rows, change = {}, {}
for i = 3, #ARGV, 4 do
  local k = tonumber(ARGV[i])
  rows[k] = rows[k] or {}
  rows[k][#rows[k] + 1] = i
end
for k, at in pairs(rows) do
  named[k] = {}
  local sites = {}
  for n, i in ipairs(at) do sites[n] = ARGV[i + 1] end
  local stored = redis.call('HMGET', KEYS[k], unpack(sites))
  local current, original, order, kept = {}, {}, {}, false
  for n, site in ipairs(sites) do
    if original[site] == nil then
      original[site] = stored[n] or false
      current[site] = original[site]
      order[#order + 1] = site
    end
  end
  for _, i in ipairs(at) do
    local site, version, wh = ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
    named[k][site] = true
    local old = current[site]
    local old_version, old_wh = -1, 0.0
    if old then old_version, old_wh = struct.unpack('<dd', old) end
    if version >= old_version then
      if wh == '' then
        if old then
          current[site] = false
          change[i] = -old_wh
        end
      else
        local value = tonumber(wh)
        current[site] = struct.pack('<dd', version, value)
        change[i] = value - old_wh
        kept = true
      end
    end
  end
  local set, gone = {}, {}
  for _, site in ipairs(order) do
    local value = current[site]
    if value then
      if value ~= original[site] then set[#set + 1] = site; set[#set + 1] = value end
    elseif original[site] then
      gone[#gone + 1] = site
    end
  end
  if #set > 0 then redis.call('HSET', KEYS[k], unpack(set)) end
  if #gone > 0 then redis.call('HDEL', KEYS[k], unpack(gone)) end
  if kept then redis.call('SADD', index_key, bucket_of(k)) end
end
for i = 3, #ARGV, 4 do -- the total's change, summed in the order of the rows
  if change[i] then delta = delta + change[i] end
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
