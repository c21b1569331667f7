-- fetch: lease up to N pending jobs to one worker (one call per batch).
-- KEYS[1] pending list, KEYS[2] active zset, KEYS[3] wake list, KEYS[4] dead zset,
-- KEYS[5] the queue's token sequence (a counter: tokens never repeat in a queue, even when a
-- job id is reused after its record was deleted)
-- ARGV[1] queue base "P:{Q}:", ARGV[2] max jobs, ARGV[3] lease ms, ARGV[4] worker id,
-- ARGV[5] envelope size cap in bytes (a larger envelope is not sent back, only its length),
-- ARGV[6] byte budget of the reply: the batch stops once the envelopes sent pass it,
-- ARGV[7] deadline, Unix ms on the Redis clock: later than this the call does nothing (its
-- caller stopped waiting; '' or 0 for none)
-- Returns { now_ms, found, id, token, attempt, envelope, length, suspect, id, token, ... }
--   found lists what the call found that no Celeriac script writes (lib.lua, 'Anomalies'):
--   { id, what, index, detail, ... }; the worker logs each once.
--   token is the fencing token of this lease: acks and lease renewals must present it.
--   suspect is 1 for a job that was on a worker that died: it is always leased alone (the
--   batch stops before it, or holds only it), so the worker can run it in isolation and a job
--   that crashes its workers does not take innocent neighbours down with it.
-- A suspect taken back from the fetching worker itself is absolved first (that worker is alive;
-- see absolve_where in lib.lua). Ids whose record is in another of Celeriac's states and in
-- that state's index (cancelled meanwhile, pushed twice) are dropped; one in no index of its
-- state is a stray (noted, left alone), and so is a job key that is not a hash; ids with no
-- record, no state or a state no Celeriac writes, and ids that are not UTF-8, become dead with
-- reason schema_error.
local pending_key, active_key, wake_key, dead_key, tokens_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local base, max_jobs, lease_ms, worker = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local cap, budget, deadline = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local now_ms, now_us = clock()
check_deadline(deadline, now_ms)
local found = {}
local out = { now_ms, found }
local ids = redis.call('RPOP', pending_key, max_jobs)
if not ids then return out end
local lease_until = digits(now_ms + lease_ms)
local next_token = redis.call('INCRBY', tokens_key, #ids) - #ids
local sent = 0
local lease = {}
-- Tokens this call hands out are above this one: a second copy later in the batch of an id
-- leased by this call (an id pushed twice) is a leftover, not a stray, although its
-- active-set entry is only added at the end.
local tokens_before = next_token
local stop_at = nil
for i, id in ipairs(ids) do
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'token', 'attempt', 'msg', 'lost')
  if f.err then
    note_stray(base, found, id, 'wrong_type', 'pending', redis.call('TYPE', jk)['ok'], now_ms)
  elseif f[1] == 'pending' and not is_utf8(id) then
    bury_orphan(base, dead_key, id, now_ms, now_us, 'job id is not UTF-8 (its bytes: ' .. hex(id) .. '): a worker could not report on it; ids are UTF-8 text (see docs/wire-format.md)', found, 'pending')
  elseif f[1] == 'pending' then
    local suspect = (tonumber(f[5]) or 0) > 0
    if suspect then
      -- Taken back from this very worker, which is fetching: it was cut off, not dead.
      local n = absolve_where(jk, base .. 'stats', now_us, function(_, w) return w ~= worker end)
      suspect = (tonumber(f[5]) or 0) - n > 0
    end
    if (suspect or sent >= budget) and #lease > 0 then
      stop_at = i
      break
    end
    next_token = next_token + 1
    local token = next_token
    local attempt = (tonumber(f[3]) or 0) + 1
    redis.call('HSET', jk, 'state', 'active', 'token', digits(token), 'attempt', digits(attempt),
      'worker', worker, 'started_us', now_us)
    lease[#lease + 1] = lease_until
    lease[#lease + 1] = id
    local msg = f[4] or ''
    local len = #msg
    if len > cap then msg = '' end
    sent = sent + #msg
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempt
    out[#out + 1] = msg
    out[#out + 1] = len
    out[#out + 1] = suspect and 1 or 0
    if suspect then
      stop_at = i + 1
      break
    end
  elseif not f[1] then
    if f[4] then
      bury_orphan(base, dead_key, id, now_ms, now_us, 'job record has no `state` field (see docs/wire-format.md)', found, 'pending')
    else
      bury_orphan(base, dead_key, id, now_ms, now_us, 'no job record for this id: the pending list holds job ids, and ' .. jk .. ' must hold the envelope (see docs/wire-format.md)', found, 'pending')
    end
  elseif not KNOWN_STATE[f[1]] then
    bury_orphan(base, dead_key, id, now_ms, now_us, 'job record has state ' .. string.format('%q', f[1]) .. '; a producer writes "pending" (or "scheduled" with a run-at) (see docs/wire-format.md)', found, 'pending')
  elseif not (f[1] == 'active' and (tonumber(f[2]) or 0) > tokens_before) then
    misplaced(base, found, id, 'pending', f[1], now_ms)
  end
end
-- Ids popped but not handled go back to the front of the queue, in their order.
if stop_at then
  for j = #ids, stop_at, -1 do redis.call('RPUSH', pending_key, ids[j]) end
end
if #lease > 0 then redis.call('ZADD', active_key, unpack(lease)) end
if redis.call('LLEN', pending_key) > 0 then wake(wake_key) end
return out
