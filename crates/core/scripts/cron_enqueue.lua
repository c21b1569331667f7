-- cron_enqueue: enqueue one tick of a schedule, exactly once however many schedulers call it.
-- KEYS[1] pending list, KEYS[2] wake list, KEYS[3] the schedule's state hash,
-- KEYS[4] the schedule's history list
-- ARGV[1] queue base, ARGV[2] tick (Unix ms), ARGV[3] job id, ARGV[4] envelope JSON
-- Returns 1 when this call enqueued the tick, 0 when it was already enqueued (this tick or a
-- later one), -1 when the tick is still in the future on the Redis clock (call again later).
-- The guard is the schedule's last tick, compared and set in this same script, so two
-- schedulers can never both enqueue a tick and a tick older than the last one never comes back.
local pending_key, wake_key, schedule_key, history_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base, tick_text, id, envelope = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ENQUEUED, ALREADY_DONE, NOT_DUE = 1, 0, -1
local now_ms = clock()
local tick = tonumber(tick_text)
if tick > now_ms then return NOT_DUE end
local last = tonumber(redis.call('HGET', schedule_key, 'last_tick') or '')
if last and last >= tick then return ALREADY_DONE end
local jk = base .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then
  redis.call('HSET', jk, 'msg', envelope, 'state', 'pending')
  redis.call('LPUSH', pending_key, id)
  wake(wake_key)
end
redis.call('HSET', schedule_key, 'last_tick', tick, 'last_id', id)
redis.call('LPUSH', history_key, tick_text .. ' ' .. id)
redis.call('LTRIM', history_key, 0, CRON_HISTORY - 1)
return ENQUEUED
