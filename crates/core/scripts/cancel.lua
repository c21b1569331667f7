-- cancel: operator cancel of jobs that have not finished.
-- KEYS[1] pending, KEYS[2] scheduled, KEYS[3] retry, KEYS[4] active, KEYS[5] cancelled,
-- KEYS[6] wake (a batch completed by the cancel enqueues its completion job)
-- ARGV[1] queue base, then job ids
-- Cost: constant per id. Returns, per id, the state it was in ('' when there is no such job). Jobs that were not
-- finished are now cancelled; a running job's worker sees it at its next lease renewal, stops
-- the handler and drops its result.
local pending_key, scheduled_key, retry_key, active_key, cancelled_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base = ARGV[1]
local FIRST_ID = 2
local now_ms, now_us = clock()
local index = { pending = pending_key, scheduled = scheduled_key, retrying = retry_key, active = active_key }
local out = {}
for i = FIRST_ID, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  local st = redis.pcall('HGET', jk, 'state')
  if type(st) ~= 'string' then
    out[#out + 1] = ''
  else
    out[#out + 1] = st
    local idx = index[st]
    if idx then
      -- A pending id stays in the list (removing it would be a linear scan of a list that
      -- may hold millions): the fetch script drops ids whose record is no longer pending.
      if st ~= 'pending' then
        redis.call('ZREM', idx, id)
      end
      redis.call('HSET', jk, 'state', 'cancelled', 'finished_us', now_us)
      redis.call('ZADD', cancelled_key, now_ms, id)
      batch_settle(base, jk, redis.call('HGET', jk, 'batch'), 'cancelled', now_ms, pending_key, wake_key)
    end
  end
end
return out
