-- History rollups: a site's generation over one local day as its day record holds it, with the data
-- version that record reflects (the reconciler's day totals: the same sums the ingest sets, as
-- history_set.lua composes them; redisolar/dao/history.py day_totals_call).
-- KEYS[1] history meta hash 'hist:{site:ID}:meta' (hv: the series data version the day records
-- reflect, set by history_set.lua), KEYS[2] the series meta hash (v: the version to use while hv is
-- not written yet), KEYS[3] the day block 'hist:{site:ID}:d:B' holding the day.
-- ARGV[1] the day's slot in the block (day - B * 360).
-- Returns {version, generation sum (text, %.17g), readings}; {version, '0', 0} without a record.
local REC = 152
local version = redis.call('HGET', KEYS[1], 'hv') or redis.call('HGET', KEYS[2], 'v') or '0'
local offset = tonumber(ARGV[1]) * REC
local data = redis.call('GETRANGE', KEYS[3], offset, offset + REC - 1)
if #data < REC then return {version, '0', 0} end
local r = {struct.unpack('<' .. string.rep('d', 19), data)}
if r[1] == 0 then return {version, '0', 0} end
return {version, string.format('%.17g', r[5]), r[1]}
