-- extend: renew the leases a worker holds (heartbeat), and store the progress their handlers
-- reported.
-- KEYS[1] active zset
-- ARGV[1] queue base, ARGV[2] lease ms, then triples: id, fencing token, progress JSON (empty:
-- none new)
-- Returns the ids this worker no longer holds (cancelled, taken back, or deleted): the worker
-- stops their handlers and drops their results.
local base = ARGV[1]
local now_ms = clock()
local deadline = now_ms + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local key = base .. 'job:' .. id
  local f = redis.pcall('HMGET', key, 'state', 'token')
  if f.err or f[1] ~= 'active' or f[2] ~= ARGV[i + 1] then
    lost[#lost + 1] = id
  else
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if ARGV[i + 2] ~= '' then
      redis.call('HSET', key, 'progress', ARGV[i + 2])
    end
  end
end
return lost
