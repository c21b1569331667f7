-- enqueue: create jobs (one call per batch).
-- KEYS[1] pending list, KEYS[2] scheduled zset, KEYS[3] wake list
-- ARGV[1] queue base "P:{Q}:", then groups of 6 per job:
--   id, envelope JSON, run-at ms ('' = now), delay ms ('' = none, measured on the Redis clock),
--   idempotency key ('' = none), idempotency TTL ms
-- Returns { id1, created1, id2, created2, ... }: created = 1 when this call created the job,
--   0 when the id, or the idempotency key, already named a job (that job's id is returned).
local pending_key, scheduled_key, wake_key = KEYS[1], KEYS[2], KEYS[3]
local base = ARGV[1]
local FIRST_GROUP = 2
local now_ms = clock()
local out = {}
local pushed = false
for i = FIRST_GROUP, #ARGV, 6 do
  local id, msg, at, delay, ikey, ittl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local jk = base .. 'job:' .. id
  local existing = nil
  if ikey ~= '' then
    local ik = base .. 'idem:' .. ikey
    local got = redis.pcall('GET', ik)
    if type(got) == 'table' and got.err then
      return redis.error_reply('idempotency key ' .. ik .. ' holds a value that is not a job id: ' .. got.err)
    elseif got then
      existing = got
    else
      redis.call('SET', ik, id, 'PX', ittl)
    end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  elseif redis.call('EXISTS', jk) == 1 then
    out[#out + 1] = id
    out[#out + 1] = 0
  else
    local run_at = nil
    if at ~= '' then
      run_at = tonumber(at)
    elseif delay ~= '' then
      run_at = now_ms + tonumber(delay)
    end
    if run_at and run_at > now_ms then
      redis.call('HSET', jk, 'msg', msg, 'state', 'scheduled')
      redis.call('ZADD', scheduled_key, run_at, id)
    else
      redis.call('HSET', jk, 'msg', msg, 'state', 'pending')
      redis.call('LPUSH', pending_key, id)
      pushed = true
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if pushed then wake(wake_key) end
return out
