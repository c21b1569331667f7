-- lock: a named lock held by one owner with a lease (one run at a time of some work).
-- KEYS[1] lock key
-- ARGV[1] 'acquire' | 'renew' | 'release', ARGV[2] owner, ARGV[3] lease ms
-- Returns 1 when the owner holds the lock after the call (acquire, renew) or released it,
-- 0 when someone else holds it (or, for renew, nobody does).
local op, owner, ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if op == 'acquire' then
  if current and current ~= owner then
    return 0
  end
  redis.call('SET', KEYS[1], owner, 'PX', ms)
  return 1
elseif op == 'renew' then
  if current ~= owner then
    return 0
  end
  redis.call('PEXPIRE', KEYS[1], ms)
  return 1
else
  if current == owner then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
