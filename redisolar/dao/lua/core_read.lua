-- Core backend: read one site's readings in [start, end) and reduce them on the server.
-- KEYS[1] series meta hash, KEYS[2] the site hash, KEYS[3..] the day partitions 'core:{site:ID}:d:DAY'
-- of consecutive days from ARGV[2] (the caller declares the days of the range; days outside them are
-- not read). ARGV[1] retention ms (0 = none), ARGV[2] the day of KEYS[3] ('' when none is declared),
-- ARGV[3] mode, ARGV[4] start ms (inclusive), ARGV[5] end ms (exclusive), then by mode:
--   'raw'    ARGV[6] metric (1 generated, 2 used, 3 temperature, 4 net)  -> {ts, value, ts, value, ...}
--   'agg'    ARGV[6] metric, ARGV[7] aggregator, ARGV[8] bucket ms      -> {bucket ts, value, ...}
--   'stats'  ARGV[6..8] optional starting sums of generated, used, temperature (the sums of the
--            hours before the range, carried over; default 0) -> {count, sum generated, max
--            generated, min generated, sum used, sum temperature, capacity or ''} ({0, capacity or
--            ''} when no reading is in the range). A sum adds each UTC hour's readings in time order,
--            then that hour's sum to the total: what the history's hour rollups compose to.
--   'latest' (KEYS[3] the newest reading's partition, for data written before the meta hash kept it)
--            -> {ts, generated, used, temperature} of the newest reading, or {}
--   'daysum' -> {version, sum of generated in [start, end), number of readings in it}
-- A mode suffixed '+site' (raw, agg, stats) returns {{id, capacity, timezone} of the site hash, reply}:
-- the read also answers whether the site exists and its zone, in the same round trip.
-- Readings older than the retention window (counted back from the newest reading) are invisible.
-- Values are returned as strings formatted with %.17g, so they convert back to the exact doubles.
local DAY = 86400000
local REC = 28
local retention = tonumber(ARGV[1])
local declared_first = tonumber(ARGV[2])
local declared_last = declared_first and declared_first + #KEYS - 3
local mode = ARGV[3]
local with_site = string.sub(mode, -5) == '+site'
if with_site then mode = string.sub(mode, 1, -6) end
local HOUR = 3600000
local function answer(reply)
  if not with_site then return reply end
  return {redis.call('HMGET', KEYS[2], 'id', 'capacity', 'timezone'), reply}
end
local meta = redis.call('HMGET', KEYS[1], 'newest', 'lo', 'hi', 'v')
local newest = tonumber(meta[1])
local function capacity() return redis.call('HGET', KEYS[2], 'capacity') or '' end
if newest == nil then
  if mode == 'daysum' then return {0, '0', 0} end
  if mode == 'stats' then return answer({0, capacity()}) end
  return answer({})
end
local function fmt(x) return string.format('%.17g', x) end

if mode == 'latest' then
  if declared_first ~= tonumber(meta[3]) then return redis.error_reply('UNDECLARED partition ' .. meta[3]) end
  local part = redis.call('GET', KEYS[3])
  local off, g, u, c = struct.unpack('<I4ddd', part, #part - REC + 1)
  return {tonumber(meta[3]) * DAY + off, fmt(g), fmt(u), fmt(c)}
end

local start_ms = tonumber(ARGV[4])
local end_ms = tonumber(ARGV[5])
if retention > 0 and start_ms < newest - retention then start_ms = newest - retention end

-- Calls visit(ts, generated, used, temperature) for every reading in [start_ms, end_ms), in order.
local function each(visit)
  if not declared_first then return end
  local first = math.max(math.floor(start_ms / DAY), tonumber(meta[2]), declared_first)
  local last = math.min(math.floor((end_ms - 1) / DAY), tonumber(meta[3]), declared_last)
  for day = first, last do
    local k = 3 + day - declared_first
    local part = redis.call('GET', KEYS[k])
    if part then
      local base = day * DAY
      for p = 1, #part, REC do
        local off, g, u, c = struct.unpack('<I4ddd', part, p)
        local ts = base + off
        if ts >= end_ms then return end
        if ts >= start_ms then visit(ts, g, u, c) end
      end
    end
  end
end

local metric = tonumber(ARGV[6])
local function pick(g, u, c)
  if metric == 1 then return g elseif metric == 2 then return u elseif metric == 3 then return c end
  return g - u
end

if mode == 'raw' then
  local out = {}
  each(function(ts, g, u, c)
    out[#out + 1] = ts
    out[#out + 1] = fmt(pick(g, u, c))
  end)
  return answer(out)
end

if mode == 'agg' then
  local agg = ARGV[7]
  local bucket = tonumber(ARGV[8])
  local out = {}
  local cur, n, acc, first, last, lo, hi
  local function flush()
    if cur == nil then return end
    local v
    if agg == 'avg' then v = acc / n
    elseif agg == 'sum' then v = acc
    elseif agg == 'min' then v = lo
    elseif agg == 'max' then v = hi
    elseif agg == 'count' then v = n
    elseif agg == 'first' then v = first
    elseif agg == 'last' then v = last
    else v = hi - lo end
    out[#out + 1] = cur
    out[#out + 1] = fmt(v)
  end
  each(function(ts, g, u, c)
    local x = pick(g, u, c)
    local b = ts - (ts % bucket)
    if b ~= cur then
      flush()
      cur, n, acc, first, lo, hi = b, 0, 0, x, x, x
    end
    n = n + 1
    acc = acc + x
    last = x
    if x < lo then lo = x end
    if x > hi then hi = x end
  end)
  flush()
  return answer(out)
end

if mode == 'stats' then
  local n, mg, ng = 0, nil, nil
  local sg, su, sc = tonumber(ARGV[6]) or 0, tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
  local hour, hg, hu, hc = nil, 0, 0, 0
  each(function(ts, g, u, c)
    local h = ts - (ts % HOUR)
    if h ~= hour then
      if hour then sg, su, sc = sg + hg, su + hu, sc + hc end
      hour, hg, hu, hc = h, 0, 0, 0
    end
    n = n + 1
    hg = hg + g
    hu = hu + u
    hc = hc + c
    if mg == nil or g > mg then mg = g end
    if ng == nil or g < ng then ng = g end
  end)
  if n == 0 then return answer({0, capacity()}) end
  sg, su, sc = sg + hg, su + hu, sc + hc
  return answer({n, fmt(sg), fmt(mg), fmt(ng), fmt(su), fmt(sc), capacity()})
end

if mode == 'daysum' then
  local sum, n = 0, 0
  each(function(ts, g)
    sum = sum + g
    n = n + 1
  end)
  return {tonumber(meta[4]), fmt(sum), n}
end
return redis.error_reply('unknown mode ' .. mode)
