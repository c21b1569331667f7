-- disown: hand back the jobs leased to a worker that never learnt of them. A fetch whose answer
-- was lost (it timed out on the worker's side after Redis ran it) leases jobs nobody runs; the
-- worker calls this once Redis answers again, with the tokens it does hold.
-- KEYS[1] active zset, KEYS[2] pending list, KEYS[3] wake list
-- ARGV[1] queue base, ARGV[2] worker id, ARGV[3] deadline (Unix ms, Redis clock; later the
-- call does nothing), ARGV[4] most leases examined, then the fencing tokens the worker holds
-- Returns the number of jobs handed back (to the front of the queue, the attempt not counted).
local active_key, pending_key, wake_key = KEYS[1], KEYS[2], KEYS[3]
local base, worker, deadline, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local FIRST_TOKEN = 5
local now_ms, now_us = clock()
check_deadline(deadline, now_ms)
local held = {}
for i = FIRST_TOKEN, #ARGV do held[ARGV[i]] = true end
local released = 0
for _, id in ipairs(redis.call('ZRANGE', active_key, 0, limit - 1)) do
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'worker', 'token', 'attempt', 'started_us', 'hist')
  if not f.err and f[1] == 'active' and f[2] == worker and not held[f[3]] then
    hist_append(jk, f[6], { attempt = tonumber(f[4]), worker = worker, started_us = f[5],
      finished_us = now_us, outcome = 'released',
      error = 'leased to worker ' .. worker .. ' by a fetch whose answer never reached it: handed back unrun' })
    redis.call('ZREM', active_key, id)
    redis.call('HSET', jk, 'state', 'pending')
    redis.call('HINCRBY', jk, 'attempt', -1)
    redis.call('RPUSH', pending_key, id)
    released = released + 1
  end
end
if released > 0 then wake(wake_key) end
return released
