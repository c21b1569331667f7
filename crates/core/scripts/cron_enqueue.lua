-- cron_enqueue: enqueue one tick of a schedule, exactly once however many schedulers call it.
-- KEYS[1] pending list, KEYS[2] wake list, KEYS[3] the schedule's state hash,
-- KEYS[4] the schedule's history list
-- ARGV[1] queue base, ARGV[2] tick (Unix ms), ARGV[3] job id, ARGV[4] envelope JSON
-- Returns 1 when this call enqueued the tick, 0 when it was already enqueued (this tick or a
-- later one), -1 when the tick is still in the future on the Redis clock (call again later).
-- The guard is the schedule's last tick, compared and set in this same script, so two
-- schedulers can never both enqueue a tick and a tick older than the last one never comes back.
local base = ARGV[1]
local now_ms = clock()
local tick = tonumber(ARGV[2])
if tick > now_ms then return -1 end
local last = tonumber(redis.call('HGET', KEYS[3], 'last_tick') or '')
if last and last >= tick then return 0 end
local id = ARGV[3]
local jk = base .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then
  redis.call('HSET', jk, 'msg', ARGV[4], 'state', 'pending')
  redis.call('LPUSH', KEYS[1], id)
  wake(KEYS[2])
end
redis.call('HSET', KEYS[3], 'last_tick', tick, 'last_id', id)
redis.call('LPUSH', KEYS[4], ARGV[2] .. ' ' .. id)
redis.call('LTRIM', KEYS[4], 0, 99)
return 1
