-- janitor: apply retention to finished jobs, by age and by count.
-- KEYS[1] succeeded, KEYS[2] dead, KEYS[3] cancelled
-- ARGV[1] queue base, ARGV[2] succeeded max age ms, ARGV[3] succeeded max count,
-- ARGV[4] dead max age ms, ARGV[5] dead max count, ARGV[6] max jobs deleted per index per call
-- (cancelled jobs follow the succeeded limits)
-- Returns the number of job records deleted.
local succeeded_key, dead_key, cancelled_key = KEYS[1], KEYS[2], KEYS[3]
local base = ARGV[1]
local succeeded_age, succeeded_max = tonumber(ARGV[2]), tonumber(ARGV[3])
local dead_age, dead_max, limit = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now_ms = clock()
local removed = 0
local rules = { { succeeded_key, succeeded_age, succeeded_max }, { dead_key, dead_age, dead_max },
  { cancelled_key, succeeded_age, succeeded_max } }
for _, r in ipairs(rules) do
  local ids = redis.call('ZRANGEBYSCORE', r[1], '-inf', now_ms - r[2], 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('ZREM', r[1], unpack(ids))
    for _, id in ipairs(ids) do redis.call('DEL', base .. 'job:' .. id) end
    removed = removed + #ids
  end
  removed = removed + trim_index(r[1], base, r[3], limit)
end
return removed
