-- ack: record the outcomes of finished handlers (one call per batch).
-- KEYS[1] active, KEYS[2] pending, KEYS[3] retry, KEYS[4] scheduled, KEYS[5] succeeded,
-- KEYS[6] dead, KEYS[7] wake, KEYS[8] stats
-- ARGV[1] queue base, ARGV[2] succeeded max count, ARGV[3] dead max count,
-- ARGV[4] deadline (Unix ms, Redis clock; later the call does nothing),
-- then groups of 6: id, fencing token, op, a, b, progress, where progress is the latest progress
-- the handler reported (JSON, '' for none; stored with any recorded outcome, so the record
-- shows where the run ended, not the last heartbeat's value) and op is
--   ok      a = result JSON ('' for none)
--   retry   a = error, b = delay ms before the next attempt
--   snooze  b = delay ms (the attempt is not counted)
--   dead    a = error, b = reason
--   release hand the job back at once (worker shutting down; the attempt is not counted)
--   expired the worker stopped the handler because its lease passed unrenewed (cut off from
--           Redis): hand the job back at once (the attempt is not counted)
-- Returns { id, why, id, why, ... } for the outcomes not recorded, why being
--   'gone'    the job is no longer active under that token: cancelled by an operator, taken
--             back by the sweep, or deleted; this worker's result is dropped
--   'cut_off' taken back by the sweep while this worker was cut off from Redis: the result is
--             dropped, and the take-back no longer counts as a crash (see absolve in lib.lua)
--   'already' this very outcome was recorded by an earlier try of the call (its answer was lost)
local active_key, pending_key, retry_key, scheduled_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local succeeded_key, dead_key, wake_key, stats_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local base, succeeded_max, dead_max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local deadline = ARGV[4]
local FIRST_GROUP, GROUP = 5, 6
local now_ms, now_us = clock()
check_deadline(deadline, now_ms)
local now_score = digits(now_ms)
local refused, done, succ, dead = {}, {}, {}, {}
local processed, failed = 0, 0
local pushed = false

local function refuse(id, why)
  refused[#refused + 1] = id
  refused[#refused + 1] = why
end

-- Back to the front of the queue, the attempt not counted.
local function hand_back(jk, id)
  redis.call('HSET', jk, 'state', 'pending')
  redis.call('HINCRBY', jk, 'attempt', -1)
  redis.call('RPUSH', pending_key, id)
  pushed = true
end

for i = FIRST_GROUP, #ARGV, GROUP do
  local id, token, op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local progress = ARGV[i + 5]
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'token', 'lost', 'batch')
  if f.err or not f[1] then
    refuse(id, REFUSED_GONE)
  elseif f[1] ~= 'active' or f[2] ~= token then
    if absolve(jk, stats_key, token, now_us) then
      refuse(id, REFUSED_CUT_OFF)
    elseif f[2] == token and f[1] ~= 'cancelled' then
      refuse(id, REFUSED_ALREADY)
    else
      refuse(id, REFUSED_GONE)
    end
  else
    done[#done + 1] = id
    -- This delivery finished without killing its worker: the job is no longer a suspect.
    if f[3] and op ~= 'release' and op ~= 'expired' then redis.call('HDEL', jk, 'lost', 'lost_tokens') end
    if op == 'ok' then
      if a == '' and progress == '' then
        -- the common case, without building a table per job
        redis.call('HSET', jk, 'state', 'succeeded', 'finished_us', now_us)
      else
        local fields = { 'state', 'succeeded', 'finished_us', now_us }
        if a ~= '' then
          fields[#fields + 1] = 'result'
          fields[#fields + 1] = a
        end
        if progress ~= '' then
          fields[#fields + 1] = 'progress'
          fields[#fields + 1] = progress
        end
        redis.call('HSET', jk, unpack(fields))
      end
      succ[#succ + 1] = now_score
      succ[#succ + 1] = id
      processed = processed + 1
      if f[4] then batch_settle(base, jk, f[4], 'succeeded', now_ms, pending_key, wake_key) end
    else
      -- failure paths are rare: read what the history entry needs only here
      if progress ~= '' then redis.call('HSET', jk, 'progress', progress) end
      local h = redis.call('HMGET', jk, 'worker', 'started_us', 'attempt', 'hist')
      local entry = { attempt = tonumber(h[3]), worker = h[1], started_us = h[2],
        finished_us = now_us, outcome = op }
      if op == 'retry' or op == 'dead' then entry.error = a end
      if op == 'dead' then entry.reason = b end
      if op == 'expired' then
        entry.error = 'lease passed unrenewed on worker ' .. tostring(h[1]) .. ' (cut off from Redis): handler stopped, job handed back'
      end
      hist_append(jk, h[4], entry)
      if op == 'retry' then
        redis.call('HSET', jk, 'state', 'retrying', 'error', a, 'finished_us', now_us)
        redis.call('ZADD', retry_key, now_ms + tonumber(b), id)
        failed = failed + 1
      elseif op == 'snooze' then
        redis.call('HSET', jk, 'state', 'scheduled', 'finished_us', now_us)
        redis.call('HINCRBY', jk, 'attempt', -1)
        redis.call('ZADD', scheduled_key, now_ms + tonumber(b), id)
      elseif op == 'dead' then
        redis.call('HSET', jk, 'state', 'dead', 'error', a, 'reason', b, 'finished_us', now_us)
        dead[#dead + 1] = now_score
        dead[#dead + 1] = id
        redis.call('HINCRBY', stats_key, 'dead:' .. b, 1)
        failed = failed + 1
        batch_settle(base, jk, f[4], 'dead', now_ms, pending_key, wake_key)
      else -- release, expired
        hand_back(jk, id)
      end
    end
  end
end
if #done > 0 then redis.call('ZREM', active_key, unpack(done)) end
if #succ > 0 then
  redis.call('ZADD', succeeded_key, unpack(succ))
  trim_index(succeeded_key, base, succeeded_max, TRIM_PER_CALL)
end
if #dead > 0 then
  redis.call('ZADD', dead_key, unpack(dead))
  trim_index(dead_key, base, dead_max, TRIM_PER_CALL)
end
if processed + failed > 0 then
  local slot = base .. 'stats:' .. math.floor(now_ms / STATS_SLOT_MS)
  if processed > 0 then
    redis.call('HINCRBY', stats_key, 'processed', processed)
    redis.call('HINCRBY', slot, 'processed', processed)
  end
  if failed > 0 then
    redis.call('HINCRBY', stats_key, 'failed', failed)
    redis.call('HINCRBY', slot, 'failed', failed)
  end
  redis.call('EXPIRE', slot, STATS_SLOT_TTL_S)
end
if pushed then wake(wake_key) end
return refused
