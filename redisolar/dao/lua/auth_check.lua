-- auth_check.lua: check an API key and take one request from a rate-limit budget, in one call.
--
-- With a key:    KEYS[1] the key's hash, KEYS[2] its sites (set); both share the hash tag {apikey:ID}.
--                The budget's state is a field of the key's hash (ARGV[5], e.g. 'rl:reads').
-- Without a key: KEYS[1] the client address's bucket (a string that expires when the budget is full).
-- ARGV[1] SHA-256 (hex) of the presented secret, '' without a key
-- ARGV[2] milliseconds between requests at the steady rate (0: no limit), ARGV[3] the burst
-- ARGV[4] the site id the request writes readings to, '' for none
-- ARGV[5] the hash field of the budget (with a key)
-- Returns {verdict, scope, site_ok, allowed, remaining, reset_ms, retry_ms}; verdict 'ok', or
-- 'unknown' (no such key, or not its secret) or 'expired' alone. A budget's state is the
-- theoretical arrival time in ms (GCRA). Time is the server's, so every process and host shares one
-- clock. A key's last use is set on every check that finds it valid.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keyed = ARGV[1] ~= ''
local scope, site_ok, tat = '', 0, nil
if keyed then
  local rec = redis.call('HMGET', KEYS[1], 'hash', 'scope', 'expires', 'all_sites', ARGV[5])
  if rec[1] ~= ARGV[1] then return {'unknown'} end
  if rec[3] and rec[3] ~= '' and tonumber(rec[3]) <= now then return {'expired'} end
  scope = rec[2]
  if ARGV[4] ~= '' and (rec[4] == '1' or redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1) then
    site_ok = 1
  end
  tat = tonumber(rec[5])
end
local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
if interval <= 0 then
  if keyed then redis.call('HSET', KEYS[1], 'last_used', now) end
  return {'ok', scope, site_ok, 1, -1, 0, 0}
end
if not keyed then tat = tonumber(redis.call('GET', KEYS[1])) end
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  if keyed then redis.call('HSET', KEYS[1], 'last_used', now) end
  return {'ok', scope, site_ok, 0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local state = string.format('%.3f', new_tat)
if keyed then
  redis.call('HSET', KEYS[1], 'last_used', now, ARGV[5], state)
else
  redis.call('SET', KEYS[1], state, 'PX', math.max(1, math.ceil(new_tat - now)))
end
local remaining = math.floor((now - allow_at) / interval + 1e-9)
return {'ok', scope, site_ok, 1, remaining, math.ceil(new_tat - now), 0}
