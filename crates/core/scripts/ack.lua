-- ack: record the outcomes of finished handlers (one call per batch).
-- KEYS[1] active, KEYS[2] pending, KEYS[3] retry, KEYS[4] scheduled, KEYS[5] succeeded,
-- KEYS[6] dead, KEYS[7] wake, KEYS[8] stats
-- ARGV[1] queue base, ARGV[2] succeeded max count, ARGV[3] dead max count,
-- then groups of 5: id, fencing token, op, a, b where op is
--   ok      a = result JSON ('' for none)
--   retry   a = error, b = delay ms before the next attempt
--   snooze  b = delay ms (the attempt is not counted)
--   dead    a = error, b = reason
--   release hand the job back at once (worker shutting down; the attempt is not counted)
-- Returns the ids whose outcome was rejected: the job is no longer active under that token
-- (its lease was taken back, or an operator cancelled it), so this worker's result is dropped.
local base = ARGV[1]
local now_ms, now_us = clock()
local rejected, done, succ, dead = {}, {}, {}, {}
local processed, failed = 0, 0
local pushed = false
for i = 4, #ARGV, 5 do
  local id, token, op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'token', 'lost')
  if f.err or f[1] ~= 'active' or f[2] ~= token then
    rejected[#rejected + 1] = id
  else
    done[#done + 1] = id
    -- This delivery finished without killing its worker: the job is no longer a suspect.
    if f[3] and op ~= 'release' then redis.call('HDEL', jk, 'lost') end
    if op == 'ok' then
      if a ~= '' then
        redis.call('HSET', jk, 'state', 'succeeded', 'finished_us', now_us, 'result', a)
      else
        redis.call('HSET', jk, 'state', 'succeeded', 'finished_us', now_us)
      end
      succ[#succ + 1] = now_ms
      succ[#succ + 1] = id
      processed = processed + 1
    else
      -- failure paths are rare: read what the history entry needs only here
      local h = redis.call('HMGET', jk, 'worker', 'started_us', 'attempt', 'hist')
      local entry = { attempt = tonumber(h[3]), worker = h[1], started_us = h[2],
        finished_us = now_us, outcome = op }
      if op == 'retry' or op == 'dead' then entry.error = a end
      if op == 'dead' then entry.reason = b end
      hist_append(jk, h[4], entry)
      if op == 'retry' then
        redis.call('HSET', jk, 'state', 'retrying', 'error', a, 'finished_us', now_us)
        redis.call('ZADD', KEYS[3], now_ms + tonumber(b), id)
        failed = failed + 1
      elseif op == 'snooze' then
        redis.call('HSET', jk, 'state', 'scheduled', 'finished_us', now_us)
        redis.call('HINCRBY', jk, 'attempt', -1)
        redis.call('ZADD', KEYS[4], now_ms + tonumber(b), id)
      elseif op == 'dead' then
        redis.call('HSET', jk, 'state', 'dead', 'error', a, 'reason', b, 'finished_us', now_us)
        dead[#dead + 1] = now_ms
        dead[#dead + 1] = id
        redis.call('HINCRBY', KEYS[8], 'dead:' .. b, 1)
        failed = failed + 1
      else -- release
        redis.call('HSET', jk, 'state', 'pending')
        redis.call('HINCRBY', jk, 'attempt', -1)
        redis.call('RPUSH', KEYS[2], id)
        pushed = true
      end
    end
  end
end
if #done > 0 then redis.call('ZREM', KEYS[1], unpack(done)) end
if #succ > 0 then
  redis.call('ZADD', KEYS[5], unpack(succ))
  trim_index(KEYS[5], base, tonumber(ARGV[2]), 1000)
end
if #dead > 0 then
  redis.call('ZADD', KEYS[6], unpack(dead))
  trim_index(KEYS[6], base, tonumber(ARGV[3]), 1000)
end
if processed + failed > 0 then
  local slot = base .. 'stats:' .. math.floor(now_ms / 10000)
  if processed > 0 then
    redis.call('HINCRBY', KEYS[8], 'processed', processed)
    redis.call('HINCRBY', slot, 'processed', processed)
  end
  if failed > 0 then
    redis.call('HINCRBY', KEYS[8], 'failed', failed)
    redis.call('HINCRBY', slot, 'failed', failed)
  end
  redis.call('EXPIRE', slot, 120)
end
if pushed then wake(KEYS[7]) end
return rejected
