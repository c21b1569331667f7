-- recover: take back jobs whose lease expired (their worker died, froze, or was cut off).
-- KEYS[1] active, KEYS[2] pending, KEYS[3] dead, KEYS[4] wake, KEYS[5] stats
-- ARGV[1] queue base, ARGV[2] deliveries without finishing before the job is dead,
-- ARGV[3] max jobs per call, ARGV[4] dead max count, ARGV[5] deadline (Unix ms, Redis clock;
-- later the call does nothing), ARGV[6] grace ms: a lease is taken back only this long after it
-- expired, so that a worker cut off from Redis has stopped the handler first (self-fencing),
-- ARGV[7] the sweeping worker's id, then the fencing tokens it holds: a worker never takes back
-- its own live leases (after a partition its outcomes, on their way, settle them)
-- Returns { requeued, buried, found }. A requeued job goes to the front of the pending list; one
-- lost ARGV[2] times ends dead with reason worker_lost. found lists what the call found that no
-- Celeriac script writes ({ id, what, index, detail, ... }, lib.lua 'Anomalies'): an id with no
-- usable record becomes a dead record (schema_error), a job key that is not a hash or a record
-- in another state and in no index of it is a stray; an id whose record says `pending` is
-- pushed to the pending list (what the record says). The token of each delivery taken back is
-- kept in `lost_tokens`: if that delivery later renews or reports, its worker was alive and the
-- take-back stops counting (absolve, lib.lua).
local active_key, pending_key, dead_key, wake_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local base, max_lost, limit, dead_max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local deadline, grace_ms, me = ARGV[5], tonumber(ARGV[6]) or 0, ARGV[7]
local FIRST_HELD = 8
local held = {}
for i = FIRST_HELD, #ARGV do held[ARGV[i]] = true end
local now_ms, now_us = clock()
check_deadline(deadline, now_ms)
local ids = redis.call('ZRANGEBYSCORE', active_key, '-inf', now_ms - grace_ms, 'LIMIT', 0, limit)
local requeued, buried = 0, 0
local found = {}
for _, id in ipairs(ids) do
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'worker', 'started_us', 'attempt', 'hist', 'lost',
    'token', 'lost_tokens', 'batch')
  local mine = not f.err and f[2] == me and held[f[7]]
  if not mine then redis.call('ZREM', active_key, id) end
  if not f.err and f[1] == 'active' and not mine then
    local lost = (tonumber(f[6]) or 0) + 1
    local tokens = {}
    for t in string.gmatch(f[8] or '', '%S+') do tokens[#tokens + 1] = t end
    tokens[#tokens + 1] = (f[7] or '') .. '/' .. (f[2] or '')
    while #tokens > LOST_TOKENS_KEPT do table.remove(tokens, 1) end
    hist_append(jk, f[5], { attempt = tonumber(f[4]), worker = f[2], started_us = f[3],
      finished_us = now_us, outcome = 'lost',
      error = 'lease expired: worker ' .. tostring(f[2]) .. ' stopped renewing it' })
    redis.call('HSET', jk, 'lost', lost, 'lost_tokens', table.concat(tokens, ' '))
    if lost >= max_lost then
      redis.call('HSET', jk, 'state', 'dead', 'reason', 'worker_lost', 'finished_us', now_us,
        'error', 'delivered ' .. lost .. ' times without finishing, and none of its workers came back: they died or froze (crash, kill, out of memory) or stayed cut off from Redis')
      redis.call('ZADD', dead_key, now_ms, id)
      redis.call('HINCRBY', stats_key, 'dead:worker_lost', 1)
      redis.call('HINCRBY', stats_key, 'failed', 1)
      buried = buried + 1
      batch_settle(base, jk, f[9], 'dead', now_ms, pending_key, wake_key)
    else
      redis.call('HSET', jk, 'state', 'pending')
      redis.call('RPUSH', pending_key, id)
      requeued = requeued + 1
    end
  elseif f.err then
    note_stray(base, found, id, 'wrong_type', 'active', redis.call('TYPE', jk)['ok'], now_ms)
  elseif mine or f[1] == 'active' then
    -- this sweeping worker's own live lease: left alone
  elseif f[1] == 'pending' then
    redis.call('RPUSH', pending_key, id)
    requeued = requeued + 1
  elseif not f[1] then
    local any = redis.call('EXISTS', jk) == 1
    bury_orphan(base, dead_key, id, now_ms, now_us, any and 'job record has no `state` field (found in the active set)'
      or 'the active set held this id but its job record is gone (deleted by hand, or evicted: Redis must run with maxmemory-policy noeviction)', found, 'active')
  elseif not KNOWN_STATE[f[1]] then
    bury_orphan(base, dead_key, id, now_ms, now_us, 'job record has state ' .. string.format('%q', f[1]) .. ' (found in the active set)', found, 'active')
  else
    misplaced(base, found, id, 'active', f[1], now_ms)
  end
end
if requeued > 0 then wake(wake_key) end
if buried > 0 then trim_index(dead_key, base, dead_max, TRIM_PER_CALL) end
return { requeued, buried, found }
