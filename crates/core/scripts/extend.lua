-- extend: renew the leases a worker holds (heartbeat), and store the progress their handlers
-- reported.
-- KEYS[1] active zset, KEYS[2] stats
-- ARGV[1] queue base, ARGV[2] lease ms, ARGV[3] deadline (Unix ms, Redis clock; later the call
-- does nothing), then triples: id, fencing token, progress JSON (empty: none new)
-- Returns { id, why, id, why, ... } for the leases this worker no longer holds, why being
-- 'gone' (cancelled, taken back, or deleted) or 'cut_off' (taken back while this worker was cut
-- off from Redis; the take-back no longer counts as a crash): the worker stops their handlers
-- and drops their results.
local active_key, stats_key = KEYS[1], KEYS[2]
local base, lease_ms, deadline = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local FIRST_TRIPLE = 4
local now_ms, now_us = clock()
check_deadline(deadline, now_ms)
local lease_until = digits(now_ms + lease_ms)
local lost = {}
for i = FIRST_TRIPLE, #ARGV, 3 do
  local id, token, progress = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = base .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'state', 'token')
  if f.err or f[1] ~= 'active' or f[2] ~= token then
    lost[#lost + 1] = id
    if not f.err and f[1] and absolve(jk, stats_key, token, now_us) then
      lost[#lost + 1] = REFUSED_CUT_OFF
    else
      lost[#lost + 1] = REFUSED_GONE
    end
  else
    redis.call('ZADD', active_key, 'XX', lease_until, id)
    if progress ~= '' then
      redis.call('HSET', jk, 'progress', progress)
    end
  end
end
return lost
