-- auth_check.lua: check an API key and take one request from a rate-limit budget, in one call.
--
-- With a key:    KEYS[1] the key's hash, KEYS[2] its sites (set), KEYS[3] the budget's bucket;
--                all three share the hash tag {apikey:ID}.
-- Without a key: KEYS[1] the client address's bucket.
-- ARGV[1] SHA-256 (hex) of the presented secret, '' without a key
-- ARGV[2] milliseconds between requests at the steady rate (0: no limit), ARGV[3] the burst
-- ARGV[4] the site id the request writes readings to, '' for none
-- Returns {verdict, scope, site_ok, allowed, remaining, reset_ms, retry_ms}; verdict 'ok', or
-- 'unknown' (no such key, or not its secret) or 'expired' alone. The bucket holds the theoretical
-- arrival time (GCRA) in ms and expires when the budget is full again. Time is the server's, so
-- every process and host shares one clock.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local scope, site_ok, bucket = '', 0, KEYS[1]
if ARGV[1] ~= '' then
  local rec = redis.call('HMGET', KEYS[1], 'hash', 'scope', 'expires', 'all_sites')
  if rec[1] ~= ARGV[1] then return {'unknown'} end
  if rec[3] and rec[3] ~= '' and tonumber(rec[3]) <= now then return {'expired'} end
  scope = rec[2]
  if ARGV[4] ~= '' and (rec[4] == '1' or redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1) then
    site_ok = 1
  end
  redis.call('HSET', KEYS[1], 'last_used', now)
  bucket = KEYS[3]
end
local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
if interval <= 0 then return {'ok', scope, site_ok, 1, -1, 0, 0} end
local tat = tonumber(redis.call('GET', bucket)) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {'ok', scope, site_ok, 0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', bucket, string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
local remaining = math.floor((now - allow_at) / interval + 1e-9)
return {'ok', scope, site_ok, 1, remaining, math.ceil(new_tat - now), 0}
