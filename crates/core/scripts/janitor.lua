-- janitor: apply retention to finished jobs, by age and by count.
-- KEYS[1] succeeded, KEYS[2] dead, KEYS[3] cancelled
-- ARGV[1] queue base, ARGV[2] succeeded max age ms, ARGV[3] succeeded max count,
-- ARGV[4] dead max age ms, ARGV[5] dead max count, ARGV[6] max jobs deleted per index per call
-- (cancelled jobs follow the succeeded limits)
-- Returns the number of job records deleted.
local base = ARGV[1]
local now_ms = clock()
local limit = tonumber(ARGV[6])
local removed = 0
local rules = { { KEYS[1], ARGV[2], ARGV[3] }, { KEYS[2], ARGV[4], ARGV[5] }, { KEYS[3], ARGV[2], ARGV[3] } }
for _, r in ipairs(rules) do
  local ids = redis.call('ZRANGEBYSCORE', r[1], '-inf', now_ms - tonumber(r[2]), 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('ZREM', r[1], unpack(ids))
    for _, id in ipairs(ids) do redis.call('DEL', base .. 'job:' .. id) end
    removed = removed + #ids
  end
  removed = removed + trim_index(r[1], base, tonumber(r[3]), limit)
end
return removed
