-- History rollups: read one site's hour or day records in [ARGV[3], ARGV[4]) (hour or local day
-- numbers), the non-empty ones, as text (%.17g: exact doubles whatever the client's decoding).
-- KEYS[1] history meta hash, KEYS[2..] consecutive blocks 'hist:{site:ID}:h:B' or ':d:B' from block
-- ARGV[2]. ARGV[1] 'h' (720 hours a block, 17 doubles a record) or 'd' (360 days, 19 doubles),
-- ARGV[5] history ms (0 = forever): records starting before newest - history are left out.
-- Returns {number, field 1, ..., number, field 1, ...}.
local HOUR = 3600000
local hours = ARGV[1] == 'h'
local size = hours and 720 or 360
local fields = hours and 17 or 19
local rec = fields * 8
local b0 = tonumber(ARGV[2])
local first, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
local history = tonumber(ARGV[5])
local horizon = -1
if history > 0 then
  local newest = tonumber(redis.call('HGET', KEYS[1], 'newest'))
  if newest == nil then return {} end
  horizon = newest - history
end
local format = '<' .. string.rep('d', fields)
local out = {}
for k = 2, #KEYS do
  local block = b0 + k - 2
  local lo = math.max(first, block * size)
  local hi = math.min(stop, (block + 1) * size)
  if lo < hi then
    local data = redis.call('GETRANGE', KEYS[k], (lo - block * size) * rec, (hi - block * size) * rec - 1)
    for p = 1, #data - rec + 1, rec do
      local r = {struct.unpack(format, data, p)}
      local start = hours and (lo + (p - 1) / rec) * HOUR or r[3]
      if r[1] > 0 and start >= horizon then
        out[#out + 1] = lo + (p - 1) / rec
        for i = 1, fields do out[#out + 1] = string.format('%.17g', r[i]) end
      end
    end
  end
end
return out
