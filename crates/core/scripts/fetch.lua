-- fetch: lease up to N pending jobs to one worker (one call per batch).
-- KEYS[1] pending list, KEYS[2] active zset, KEYS[3] wake list, KEYS[4] dead zset
-- ARGV[1] queue base "P:{Q}:", ARGV[2] max jobs, ARGV[3] lease ms, ARGV[4] worker id,
-- ARGV[5] envelope size cap in bytes (a larger envelope is not sent back, only its length)
-- Returns { now_ms, id, token, attempt, envelope, length, id, token, ... }
--   token is the fencing token of this lease: acks and lease renewals must present it.
-- Ids whose record is in another known state (cancelled meanwhile, pushed twice) are dropped;
-- ids with no record, no state or a state no Celeriac writes become dead with reason
-- schema_error.
local base = ARGV[1]
local now_ms, now_us = clock()
local out = { now_ms }
local ids = redis.call('RPOP', KEYS[1], tonumber(ARGV[2]))
if not ids then return out end
local deadline = now_ms + tonumber(ARGV[3])
local cap = tonumber(ARGV[5])
local lease = {}
for _, id in ipairs(ids) do
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'token', 'attempt', 'msg')
  if f.err then
    redis.call('HINCRBY', base .. 'stats', 'orphans', 1)
  elseif f[1] == 'pending' then
    local token = (tonumber(f[2]) or 0) + 1
    local attempt = (tonumber(f[3]) or 0) + 1
    redis.call('HSET', jk, 'state', 'active', 'token', token, 'attempt', attempt,
      'worker', ARGV[4], 'started_us', now_us)
    lease[#lease + 1] = deadline
    lease[#lease + 1] = id
    local msg = f[4] or ''
    local len = #msg
    if len > cap then msg = '' end
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempt
    out[#out + 1] = msg
    out[#out + 1] = len
  elseif not f[1] then
    if f[4] then
      bury_orphan(base, KEYS[4], id, now_ms, now_us, 'job record has no `state` field (see docs/wire-format.md)')
    else
      bury_orphan(base, KEYS[4], id, now_ms, now_us, 'no job record for this id: the pending list holds job ids, and ' .. jk .. ' must hold the envelope (see docs/wire-format.md)')
    end
  elseif not KNOWN_STATE[f[1]] then
    bury_orphan(base, KEYS[4], id, now_ms, now_us, 'job record has state ' .. string.format('%q', f[1]) .. '; a producer writes "pending" (or "scheduled" with a run-at) (see docs/wire-format.md)')
  end
end
if #lease > 0 then redis.call('ZADD', KEYS[2], unpack(lease)) end
if redis.call('LLEN', KEYS[1]) > 0 then wake(KEYS[3]) end
return out
