-- retry: operator "run now" for jobs that are dead, cancelled, retrying or scheduled.
-- KEYS[1] pending, KEYS[2] scheduled, KEYS[3] retry, KEYS[4] dead, KEYS[5] cancelled, KEYS[6] wake
-- ARGV[1] queue base, ARGV[2] mode: 'ids' (ARGV[4..] are job ids) or 'all-dead' (up to
-- ARGV[3] jobs from the dead set that died before ARGV[4], Unix ms)
-- Returns, per id, the state it was in ('' when there is no such job); for 'all-dead',
-- { ids taken off the dead set, ids requeued } (ids whose record is not dead are only taken off
-- the index, so the loop always ends). A requeued job gets one more attempt (its attempt count is kept, so a job past its
-- max_attempts that fails again goes back to dead); its count of lost deliveries is reset and its
-- history kept.
local pending_key, scheduled_key, retry_key, dead_key, cancelled_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base, mode = ARGV[1], ARGV[2]
-- 'all-dead' only: how many, and died before when (Unix ms); in 'ids' mode ARGV[3] is unused.
local limit, died_before = tonumber(ARGV[3]), ARGV[4]
local all_dead = mode == 'all-dead'
local FIRST_ID = 4
local now_ms, now_us = clock()
local index = { scheduled = scheduled_key, retrying = retry_key, dead = dead_key, cancelled = cancelled_key }
local ids = {}
if all_dead then
  -- Only jobs that died before the operator's command (ARGV[4], ms): a retried job that dies
  -- again meanwhile is not picked up again, so the loop ends.
  ids = redis.call('ZRANGEBYSCORE', dead_key, '-inf', '(' .. died_before, 'LIMIT', 0, limit)
else
  for i = FIRST_ID, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
local pushed = false
for _, id in ipairs(ids) do
  local jk = base .. 'job:' .. id
  local st = redis.pcall('HGET', jk, 'state')
  if all_dead and st ~= 'dead' then
    redis.call('ZREM', dead_key, id)
    out[#out + 1] = ''
  elseif type(st) ~= 'string' then
    out[#out + 1] = ''
  else
    out[#out + 1] = st
    local idx = index[st]
    if idx then
      redis.call('ZREM', idx, id)
      redis.call('HSET', jk, 'state', 'pending', 'lost', 0)
      redis.call('HDEL', jk, 'lost_tokens')
      redis.call('HDEL', jk, 'reason')
      redis.call('LPUSH', pending_key, id)
      pushed = true
    end
  end
end
if pushed then wake(wake_key) end
if all_dead then
  local requeued = 0
  for _, prev in ipairs(out) do
    if prev == 'dead' then requeued = requeued + 1 end
  end
  return { #ids, requeued }
end
return out
