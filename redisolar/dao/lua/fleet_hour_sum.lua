-- Recompute one clock hour's fleet total exactly from its site entries (the reconciler's last step,
-- wiping out corruption and the rounding that (new - old) updates accumulate).
-- KEYS[1] the hour's total (string), KEYS[2] its bucket index (set),
-- KEYS[3..] every bucket hash the index names 'fleet:gen:{fh:HOUR}:s:B'; one hash tag.
-- Buckets that no longer exist leave the index; an hour without entries loses its total.
-- Returns the total, as text.
local total, any = 0.0, false
for k = 3, #KEYS do
  local values = redis.call('HVALS', KEYS[k])
  if #values == 0 then
    redis.call('SREM', KEYS[2], string.match(KEYS[k], ':s:(%d+)$'))
  end
  for j = 1, #values do
    local _, wh = struct.unpack('<dd', values[j])
    total = total + wh
    any = true
  end
end
if not any then
  redis.call('DEL', KEYS[1], KEYS[2])
  return '0'
end
local text = string.format('%.17g', total)
local ttl = redis.call('PTTL', KEYS[2])
redis.call('SET', KEYS[1], text)
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return text
