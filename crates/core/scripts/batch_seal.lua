-- batch_seal: no more children will be added to the batch. Sealing again changes nothing.
-- The batch completes at once when every child already reached a final state (or it has none).
-- KEYS[1] the batch hash, KEYS[2] pending list, KEYS[3] wake list
-- ARGV[1] queue base, ARGV[2] batch id, ARGV[3] completion job id ('' = none),
-- ARGV[4] completion job envelope JSON, ARGV[5] lifetime of the record once completed (ms),
-- ARGV[6] lifetime while open (ms)
-- Returns { total, succeeded, dead, cancelled, created_at ms, completed_at ms (0: not yet) }.
local batch_key, pending_key, wake_key = KEYS[1], KEYS[2], KEYS[3]
local base, batch, done_id, done_msg = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local done_ttl, open_ttl = ARGV[5], tonumber(ARGV[6])
local now_ms = clock()
if redis.call('HGET', batch_key, 'sealed') ~= '1' then
  redis.call('HSETNX', batch_key, 'created_at', now_ms)
  redis.call('HSET', batch_key, 'sealed', 1, 'on_complete_id', done_id, 'on_complete', done_msg,
    'done_ttl_ms', done_ttl)
  if open_ttl and open_ttl > 0 then redis.call('PEXPIRE', batch_key, open_ttl) end
  batch_try_complete(base, batch_key, now_ms, pending_key, wake_key)
end
local f = redis.call('HMGET', batch_key, 'total', 'succeeded', 'dead', 'cancelled', 'created_at',
  'completed_at')
local out = {}
for i = 1, 6 do out[i] = tonumber(f[i]) or 0 end
return out
