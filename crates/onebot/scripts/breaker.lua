-- breaker: the circuit breaker of one bot account. It is open while its key exists; the key's
-- TTL is the rest of the open period, so it closes by itself on the Redis clock.
--
-- KEYS[1] breaker  string: open-until (ms, Redis clock)
-- ARGV[1] op       'check' | 'trip' | 'close'
-- ARGV[2] open_ms  how long a trip opens it (ms, > 0; 'trip' only)
--
-- Returns, for 'check' and 'trip': {until_ms, remaining_ms} while open, {} when closed
-- ('trip' always opens: a new signal restarts the period). 'close' returns {}.
local breaker_key, op = KEYS[1], ARGV[1]

if op == 'trip' then
  local open_ms = tonumber(ARGV[2])
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local until_ms = now_ms + open_ms
  redis.call('SET', breaker_key, string.format('%d', until_ms), 'PX', open_ms)
  return {until_ms, open_ms}
elseif op == 'close' then
  redis.call('DEL', breaker_key)
  return {}
end

local open_until = redis.call('GET', breaker_key)
if not open_until then
  return {}
end
return {tonumber(open_until), redis.call('PTTL', breaker_key)}
