-- lib.lua: helpers prepended to every Celeriac script (not a script on its own).
-- Job records live at ARGV[1] .. 'job:' .. id, where ARGV[1] is the queue base "P:{Q}:"; every
-- key a script touches carries the queue's hash tag, so scripts stay within one Cluster slot.

-- The Redis clock: Unix milliseconds (number) and microseconds (decimal string).
local function clock()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local us = t[1] .. string.format('%06d', tonumber(t[2]))
  return ms, us
end

-- Append a history entry (one JSON object per line), keeping the newest 32 KiB.
local function hist_append(jk, old, entry)
  local h = (old or '') .. cjson.encode(entry) .. '\n'
  while #h > 32768 do
    local nl = string.find(h, '\n', 1, true)
    if not nl then h = '' break end
    h = string.sub(h, nl + 1)
  end
  redis.call('HSET', jk, 'hist', h)
end

-- Keep at most `max` entries in a retention index, deleting the oldest jobs (at most `limit`).
local function trim_index(zkey, base, max, limit)
  local n = redis.call('ZCARD', zkey) - max
  if n <= 0 then return 0 end
  if n > limit then n = limit end
  local popped = redis.call('ZPOPMIN', zkey, n)
  for i = 1, #popped, 2 do
    redis.call('DEL', base .. 'job:' .. popped[i])
  end
  return n
end

-- An id with no usable job record becomes a dead record with reason schema_error, so that a
-- foreign producer's mistake is visible instead of silently dropped. A key of a foreign type is
-- left alone and counted under `orphans`.
local function bury_orphan(base, dead_key, id, now_ms, now_us, message)
  local jk = base .. 'job:' .. id
  local t = redis.call('TYPE', jk)['ok']
  if t ~= 'none' and t ~= 'hash' then
    redis.call('HINCRBY', base .. 'stats', 'orphans', 1)
    return
  end
  redis.call('HSET', jk, 'state', 'dead', 'reason', 'schema_error', 'error', message,
    'finished_us', now_us)
  redis.call('ZADD', dead_key, now_ms, id)
  redis.call('HINCRBY', base .. 'stats', 'dead:schema_error', 1)
  redis.call('HINCRBY', base .. 'stats', 'failed', 1)
end

-- States a job record can hold; anything else was written by a confused producer.
local KNOWN_STATE = { scheduled = true, pending = true, active = true, retrying = true,
  succeeded = true, dead = true, cancelled = true }

-- Wake one idle fetcher of this queue (at most one token is kept).
local function wake(wake_key)
  redis.call('LPUSH', wake_key, '1')
  redis.call('LTRIM', wake_key, 0, 0)
end

