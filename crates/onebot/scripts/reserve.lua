-- reserve: take the next free action slot of one bot account, for every process at once.
-- Times are microseconds on the Redis clock (TIME); a slot is when the caller may send.
--
-- KEYS[1] pace     zset: reserved slots (member and score: the slot, µs)
-- KEYS[2] kick     string: earliest slot of the account's next kick (µs)
-- KEYS[3] breaker  string: open-until (ms); exists only while the breaker is open
-- ARGV[1] interval       least time between two actions of the account (µs, > 0)
-- ARGV[2] kick_interval  least time between two kicks (µs, >= 0)
-- ARGV[3] is_kick        '1' when the action is a kick, '0' otherwise
--
-- Returns {0, wait_us}: a slot is reserved; sleep wait_us, then send.
--         {1, until_ms, remaining_ms}: the breaker is open; nothing is reserved.
--
-- The earliest slot at least `interval` away from every reserved slot is taken, so a message
-- fills the gap before a kick that waits for kick_interval instead of queueing behind it.
-- Each call adds exactly one slot, atomically: none is lost or counted twice. A caller that
-- dies before sending just leaves its slot unused.
local pace_key, kick_key, breaker_key = KEYS[1], KEYS[2], KEYS[3]
local interval = tonumber(ARGV[1])
local kick_interval = tonumber(ARGV[2])
local is_kick = ARGV[3] == '1'

local function int(x)
  return string.format('%d', x)
end

local open_until = redis.call('GET', breaker_key)
if open_until then
  return {1, tonumber(open_until), redis.call('PTTL', breaker_key)}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local slot = now
if is_kick then
  local next_kick = tonumber(redis.call('GET', kick_key) or '0')
  if next_kick > slot then
    slot = next_kick
  end
end

-- Slots at or before now - interval can no longer conflict with anything.
redis.call('ZREMRANGEBYSCORE', pace_key, '-inf', int(now - interval))
local taken = redis.call('ZRANGE', pace_key, '(' .. int(slot - interval), '+inf', 'BYSCORE')
for _, s in ipairs(taken) do
  s = tonumber(s)
  if s >= slot + interval then
    break -- a gap wide enough before the next reserved slot
  end
  if s > slot - interval then
    slot = s + interval -- too close to a reserved slot: try just after it
  end
end
-- The set must live until its furthest slot has passed.
local last = slot
if #taken > 0 then
  last = math.max(slot, tonumber(taken[#taken]))
end

redis.call('ZADD', pace_key, int(slot), int(slot))
redis.call('PEXPIRE', pace_key, math.ceil((last - now + interval) / 1000) + 1000)
if is_kick then
  local next_kick = slot + kick_interval
  redis.call('SET', kick_key, int(next_kick), 'PX', math.ceil((next_kick - now) / 1000) + 1000)
end
return {0, slot - now}
