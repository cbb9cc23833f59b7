-- lib/localday.lua: site-local calendar days in Lua, included by scripts with a line
-- '--@include lib/localday.lua' (redisolar/dao/scripts.py); the Lua twin of redisolar/localtime.py.
--
-- tzt is a site hash's 'tzt' field (localtime.encode_tzt): 10-hex-digit entries, sorted, each the
-- first UTC minute of an offset (7 digits) and that offset in minutes + 2048 (3 digits), from 2000
-- to 2100; before the first entry its offset holds, after the last the last. Day numbers count like
-- Unix days: 0 is 1970-01-01 (local). A site without 'tzt' (false, nil or ''; not migrated yet)
-- counts UTC days.

local function tzt_minute(tzt, i)
  return tonumber(string.sub(tzt, i * 10 - 9, i * 10 - 3), 16)
end

local function tzt_offset_ms(tzt, i)
  return (tonumber(string.sub(tzt, i * 10 - 2, i * 10), 16) - 2048) * 60000
end

-- the index (1-based) of the last entry starting at or before minute m (1 if none)
local function tzt_entry(tzt, m)
  local lo, hi = 1, #tzt / 10
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if tzt_minute(tzt, mid) <= m then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- local_day(ms, tzt): the local day number of the instant ms (ms since the Unix epoch, UTC)
local function local_day(ms, tzt)
  if not tzt or tzt == '' then
    return math.floor(ms / 86400000)
  end
  return math.floor((ms + tzt_offset_ms(tzt, tzt_entry(tzt, math.floor(ms / 60000)))) / 86400000)
end

-- The first instant whose local date is day or later, found as localtime._first_instant_of does:
-- from the entry in force two days before the day's UTC midnight M, the first piece whose wall time
-- reaches M answers max(piece start, M - piece offset) (offsets lie within +-26 h).
local function local_day_start(day, tzt)
  local midnight = day * 86400000
  if not tzt or tzt == '' then
    return midnight
  end
  local n = #tzt / 10
  local i = tzt_entry(tzt, math.floor((midnight - 2 * 86400000) / 60000))
  while true do
    local offset = tzt_offset_ms(tzt, i)
    local start = midnight - 3 * 86400000  -- the first entry holds since ever
    if i > 1 then start = tzt_minute(tzt, i) * 60000 end
    if i == n or tzt_minute(tzt, i + 1) * 60000 + offset > midnight then
      return math.max(start, midnight - offset)
    end
    i = i + 1
  end
end

-- local_day_bounds(day, tzt): start_ms, end_ms: the instants whose local date is day, [start, end)
-- (23, 24 or 25 h across DST changes; end == start for a day the zone skipped)
local function local_day_bounds(day, tzt)
  return local_day_start(day, tzt), local_day_start(day + 1, tzt)
end
