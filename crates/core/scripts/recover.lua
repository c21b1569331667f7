-- recover: take back jobs whose lease expired (their worker died or froze).
-- KEYS[1] active, KEYS[2] pending, KEYS[3] dead, KEYS[4] wake, KEYS[5] stats
-- ARGV[1] queue base, ARGV[2] deliveries without finishing before the job is dead,
-- ARGV[3] max jobs per call, ARGV[4] dead max count
-- Returns { requeued, buried }. A requeued job goes to the front of the pending list; one lost
-- ARGV[2] times ends dead with reason worker_lost.
local base = ARGV[1]
local now_ms, now_us = clock()
local max_lost = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[3]))
local requeued, buried = 0, 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'worker', 'started_us', 'attempt', 'hist', 'lost')
  if not f.err and f[1] == 'active' then
    local lost = (tonumber(f[6]) or 0) + 1
    hist_append(jk, f[5], { attempt = tonumber(f[4]), worker = f[2], started_us = f[3],
      finished_us = now_us, outcome = 'lost',
      error = 'lease expired: worker ' .. tostring(f[2]) .. ' stopped renewing it' })
    if lost >= max_lost then
      redis.call('HSET', jk, 'state', 'dead', 'reason', 'worker_lost', 'lost', lost,
        'finished_us', now_us,
        'error', 'delivered ' .. lost .. ' times without finishing: its workers died or froze (crash, kill, out of memory)')
      redis.call('ZADD', KEYS[3], now_ms, id)
      redis.call('HINCRBY', KEYS[5], 'dead:worker_lost', 1)
      redis.call('HINCRBY', KEYS[5], 'failed', 1)
      buried = buried + 1
    else
      redis.call('HSET', jk, 'state', 'pending', 'lost', lost)
      redis.call('RPUSH', KEYS[2], id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then wake(KEYS[4]) end
if buried > 0 then trim_index(KEYS[3], base, tonumber(ARGV[4]), 1000) end
return { requeued, buried }
