-- batch_add: add a chunk of child jobs to a batch (one call per chunk of up to 1,000: each
-- chunk is atomic). A child whose id exists is left as it is (an earlier try of the same chunk
-- added it), so a parent job that runs again adds nothing twice and `total` counts each child
-- once.
-- KEYS[1] pending list, KEYS[2] scheduled zset, KEYS[3] wake list, KEYS[4] the batch hash
-- ARGV[1] queue base, ARGV[2] batch id, ARGV[3] lifetime of the batch record while open (ms),
-- then groups of 3 per child: id, envelope JSON, run-at ms ('' = now)
-- Returns { added, already there, ids that exist but belong to no batch or another one }.
-- Errors with BATCH_SEALED when the batch is sealed (no child can be added after that).
local pending_key, scheduled_key, wake_key, batch_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base, batch, open_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local FIRST_GROUP = 4
local now_ms = clock()
if redis.call('HGET', batch_key, 'sealed') == '1' then
  return redis.error_reply('BATCH_SEALED batch ' .. batch .. ' is sealed: no child can be added')
end
redis.call('HSETNX', batch_key, 'created_at', now_ms)
local added, existing, foreign = 0, 0, 0
local pushed = false
for i = FIRST_GROUP, #ARGV, 3 do
  local id, msg, at = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = base .. 'job:' .. id
  local owner = redis.pcall('HGET', jk, 'batch')
  if redis.call('EXISTS', jk) == 1 then
    if owner == batch then existing = existing + 1 else foreign = foreign + 1 end
  else
    local run_at = tonumber(at)
    if run_at and run_at > now_ms then
      redis.call('HSET', jk, 'msg', msg, 'state', 'scheduled', 'batch', batch)
      redis.call('ZADD', scheduled_key, run_at, id)
    else
      redis.call('HSET', jk, 'msg', msg, 'state', 'pending', 'batch', batch)
      redis.call('LPUSH', pending_key, id)
      pushed = true
    end
    added = added + 1
  end
end
if added > 0 then redis.call('HINCRBY', batch_key, 'total', added) end
if open_ttl and open_ttl > 0 then redis.call('PEXPIRE', batch_key, open_ttl) end
if pushed then wake(wake_key) end
return { added, existing, foreign }
