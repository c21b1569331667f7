-- lib.lua: constants and helpers shared by Celeriac's scripts (not a script on its own). Each
-- script is sent with the paragraphs of this file it names (scripts::assemble in scripts.rs):
-- keep a helper's lines together, with no blank line inside it, and declare names at the start
-- of a line (`local function NAME`, `local NAME =`).
-- Job records live at ARGV[1] .. 'job:' .. id, where ARGV[1] is the queue base "P:{Q}:"; every
-- key a script touches carries the queue's hash tag, so scripts stay within one Cluster slot.

-- Newest bytes of attempt history kept on a job record (`hist`).
local HISTORY_BYTES = 32768
-- Most jobs one call deletes from a retention index when it is over its count.
local TRIM_PER_CALL = 1000
-- Length of a throughput slot (`P:{Q}:stats:SLOT`), and how long a slot is kept, in seconds.
local STATS_SLOT_MS = 10000
local STATS_SLOT_TTL_S = 120
-- Ticks kept in a schedule's history list.
local CRON_HISTORY = 100

-- The Redis clock: Unix milliseconds (number) and microseconds (decimal string).
local function clock()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local us = t[1] .. string.format('%06d', tonumber(t[2]))
  return ms, us
end

-- An integer as command text. Redis turns a number passed to redis.call into text with a float
-- formatting ('%.17g'), several times dearer than '%d': what a script sends for every job (a
-- fencing token, an attempt, a score) goes through this, once per distinct value.
local function digits(n)
  return string.format('%d', n)
end

-- Append a history entry (one JSON object per line), keeping the newest 32 KiB.
local function hist_append(jk, old, entry)
  local h = (old or '') .. cjson.encode(entry) .. '\n'
  while #h > HISTORY_BYTES do
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

-- Anomalies: what a script finds in the keyspace that no Celeriac script writes. Each is
-- counted, kept where an operator sees it, and returned to the worker that found it, which logs
-- it once (docs/job-states.md, "Strays and orphans"). A script collects them in a list
-- `found` of { id, what, index, detail } (flattened into its reply), `what` being
--   'dead_lettered' an id with no usable record: it became a dead record (schema_error);
--   'wrong_type'    the job key is not a hash (written with SET, say): a stray, left alone;
--   'wrong_index'   the record's state is not that of the index holding the id, and the
--                   record is in no index of its own state either: a stray, left alone.
-- Strays are kept in the queue's `strays` hash (id -> JSON of what was found, at most
-- STRAYS_KEPT ids) until `celeriac jobs strays --repair` settles them, and counted in the
-- queue's stats under `strays`.
local STRAYS_KEPT = 10000

local function found_add(found, id, what, index, detail)
  found[#found + 1] = id
  found[#found + 1] = what
  found[#found + 1] = index
  found[#found + 1] = detail
end

-- Note a stray of the queue at `base`, found in `index`.
local function note_stray(base, found, id, what, index, detail, now_ms)
  local strays = base .. 'strays'
  redis.call('HINCRBY', base .. 'stats', 'strays', 1)
  if redis.call('HEXISTS', strays, id) == 1 or redis.call('HLEN', strays) < STRAYS_KEPT then
    redis.call('HSET', strays, id, cjson.encode({ what = what, index = index, found = detail, at_ms = now_ms }))
  end
  found_add(found, id, what, index, detail)
end

-- The index key of a record in `state`; nil for `pending` (a list: membership is not checked)
-- and for states Celeriac never writes.
local STATE_INDEX = { scheduled = 'scheduled', retrying = 'retry', active = 'active',
  succeeded = 'succeeded', dead = 'dead', cancelled = 'cancelled' }

-- The id was in `index` but its record is in `state`, another of Celeriac's states. When the
-- record is in the index of its own state this entry is a leftover (an id pushed twice, a
-- pending job cancelled meanwhile): dropped, the job lives on. Otherwise the record is
-- stranded — no script would ever find it again — and noted as a stray.
local function misplaced(base, found, id, index, state, now_ms)
  local own = STATE_INDEX[state]
  if own and redis.call('ZSCORE', base .. own, id) then return end
  note_stray(base, found, id, 'wrong_index', index, state, now_ms)
end

-- An id with no usable job record becomes a dead record with reason schema_error, so that a
-- foreign producer's mistake is visible instead of silently dropped. A key of another type is
-- left alone and noted as a stray.
local function bury_orphan(base, dead_key, id, now_ms, now_us, message, found, index)
  local jk = base .. 'job:' .. id
  local t = redis.call('TYPE', jk)['ok']
  if t ~= 'none' and t ~= 'hash' then
    note_stray(base, found, id, 'wrong_type', index, t, now_ms)
    return
  end
  redis.call('HSET', jk, 'state', 'dead', 'reason', 'schema_error', 'error', message,
    'finished_us', now_us)
  redis.call('ZADD', dead_key, now_ms, id)
  redis.call('HINCRBY', base .. 'stats', 'dead:schema_error', 1)
  redis.call('HINCRBY', base .. 'stats', 'failed', 1)
  found_add(found, id, 'dead_lettered', index, message)
end

-- Whether `s` is valid UTF-8. Ids are UTF-8 text (docs/wire-format.md §1): a worker could not
-- report on any other. Plain ASCII, the usual id, costs one anchored match (about half the cost
-- of searching for a byte above 127 from every position).
local function is_utf8(s)
  if string.find(s, '^[^\128-\255]*$') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local len
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    else return false end
    if i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local cc = string.byte(s, j)
      if cc < 0x80 or cc > 0xBF then return false end
    end
    local c2 = string.byte(s, i + 1)
    -- overlong forms, UTF-16 surrogates, past U+10FFFF
    if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F)
      or (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then
      return false
    end
    i = i + len
  end
  return true
end

-- Bytes most shown in hex in a message.
local HEX_SHOWN = 64

-- The first HEX_SHOWN bytes of `s` in hex, space-separated.
local function hex(s)
  local out = string.gsub(string.sub(s, 1, HEX_SHOWN), '.', function(ch)
    return string.format('%02x ', string.byte(ch))
  end)
  out = string.sub(out, 1, -2)
  if #s > HEX_SHOWN then out = out .. ' …' end
  return out
end

-- States a job record can hold; anything else was written by a confused producer.
local KNOWN_STATE = { scheduled = true, pending = true, active = true, retrying = true,
  succeeded = true, dead = true, cancelled = true }

-- Wake one idle fetcher of this queue (at most one token is kept).
local function wake(wake_key)
  redis.call('LPUSH', wake_key, '1')
  redis.call('LTRIM', wake_key, 0, 0)
end


-- Refuse a call that reached Redis after its caller stopped waiting for the answer (ADR 0011):
-- a worker's request held up by a partition must not lease, renew, sweep or finish anything
-- once the worker has given up on it. `deadline` is Unix ms on the Redis clock ('' or 0: none).
-- Call it first, before any write.
local function check_deadline(deadline, now_ms)
  local d = tonumber(deadline) or 0
  if d > 0 and now_ms > d then
    error({ err = 'LATE request reached Redis ' .. (now_ms - d) .. ' ms after its deadline; nothing was done' })
  end
end

-- Deliveries the sweep took back, newest last: `lost_tokens` holds at most this many entries
-- `TOKEN/WORKER` (fencing token and worker id), space-separated.
local LOST_TOKENS_KEPT = 8

-- Some deliveries the sweep took back turned out to belong to a live worker (cut off from
-- Redis, not crashed): those whose entry `keep(token, worker)` rejects. Their take-backs do not
-- count: `lost` (deliveries without finishing: the max_deliveries count and the crash-suspect
-- mark) goes down by one each, and the history says so. Returns how many were absolved.
local function absolve_where(jk, stats_key, now_us, keep)
  local f = redis.call('HMGET', jk, 'lost_tokens', 'lost', 'hist')
  if not f[1] then return 0 end
  local kept, gone, who = {}, 0, nil
  for entry in string.gmatch(f[1], '%S+') do
    local token, worker = string.match(entry, '^([^/]*)/(.*)$')
    if token and not keep(token, worker) then
      gone = gone + 1
      who = worker
    else
      kept[#kept + 1] = entry
    end
  end
  if gone == 0 then return 0 end
  if #kept > 0 then
    redis.call('HSET', jk, 'lost_tokens', table.concat(kept, ' '))
  else
    redis.call('HDEL', jk, 'lost_tokens')
  end
  local lost = (tonumber(f[2]) or 0) - gone
  if lost > 0 then redis.call('HSET', jk, 'lost', lost) else redis.call('HDEL', jk, 'lost') end
  hist_append(jk, f[3], { worker = who, finished_us = now_us, outcome = 'cut_off',
    error = 'worker ' .. tostring(who) .. ' was cut off from Redis, not dead: the take-back of its delivery does not count towards max_deliveries' })
  redis.call('HINCRBY', stats_key, 'cut_off', gone)
  return gone
end

-- The delivery with `token` was taken back, and has just renewed or reported: absolve it.
local function absolve(jk, stats_key, token, now_us)
  return absolve_where(jk, stats_key, now_us, function(t, _) return t ~= token end) > 0
end

-- Why an outcome or a renewal was refused (see `refused` in ack.lua and extend.lua).
local REFUSED_GONE = 'gone'       -- cancelled, taken back by the sweep, or deleted
local REFUSED_CUT_OFF = 'cut_off' -- taken back while its worker was cut off (absolved)
local REFUSED_ALREADY = 'already' -- this outcome was recorded by an earlier try of the call

-- Batches (ADR 0010). A child job's record names its batch (`batch`); the batch hash
-- `base .. 'batch:' .. id` lives in the children's queue (same slot) and keeps `total` and a
-- counter per final state. The first time a child reaches a final state its batch counts it,
-- once (`counted` on the child); the batch completes when it is sealed and every child is
-- counted, in the same call, enqueueing its completion job if it has one.
local BATCH_FINAL = { succeeded = true, dead = true, cancelled = true }

-- Complete the batch at `bk` if it is sealed and every child was counted; true if it did.
local function batch_try_complete(base, bk, now_ms, pending_key, wake_key)
  local f = redis.call('HMGET', bk, 'total', 'succeeded', 'dead', 'cancelled', 'sealed',
    'completed_at', 'on_complete', 'on_complete_id', 'done_ttl_ms')
  if f[5] ~= '1' or f[6] then return false end
  local counted = (tonumber(f[2]) or 0) + (tonumber(f[3]) or 0) + (tonumber(f[4]) or 0)
  if counted < (tonumber(f[1]) or 0) then return false end
  redis.call('HSET', bk, 'completed_at', now_ms)
  if f[7] and f[7] ~= '' then
    local cjk = base .. 'job:' .. f[8]
    if redis.call('EXISTS', cjk) == 0 then
      redis.call('HSET', cjk, 'msg', f[7], 'state', 'pending')
      redis.call('LPUSH', pending_key, f[8])
      wake(wake_key)
    end
  end
  local ttl = tonumber(f[9])
  if ttl and ttl > 0 then redis.call('PEXPIRE', bk, ttl) end
  return true
end

-- The child at `jk` (of batch `batch`) just reached final state `final`: count it, once.
local function batch_settle(base, jk, batch, final, now_ms, pending_key, wake_key)
  if not batch or not BATCH_FINAL[final] then return end
  if redis.call('HSETNX', jk, 'counted', final) == 0 then return end
  local bk = base .. 'batch:' .. batch
  if redis.call('EXISTS', bk) == 0 then return end
  redis.call('HINCRBY', bk, final, 1)
  batch_try_complete(base, bk, now_ms, pending_key, wake_key)
end
