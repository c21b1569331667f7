-- lock: a named lock held by one owner with a lease (one run at a time of some work).
-- KEYS[1] lock key
-- ARGV[1] 'acquire' | 'renew' | 'release', ARGV[2] owner, ARGV[3] lease ms
-- Returns 1 when the owner holds the lock after the call (acquire, renew) or released it,
-- 0 when someone else holds it (or, for renew, nobody does).
local lock_key = KEYS[1]
local op, owner, ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local HELD, NOT_HELD = 1, 0
local current = redis.call('GET', lock_key)
if op == 'acquire' then
  if current and current ~= owner then
    return NOT_HELD
  end
  redis.call('SET', lock_key, owner, 'PX', ms)
  return HELD
elseif op == 'renew' then
  if current ~= owner then
    return NOT_HELD
  end
  redis.call('PEXPIRE', lock_key, ms)
  return HELD
else
  if current == owner then
    redis.call('DEL', lock_key)
    return HELD
  end
  return NOT_HELD
end
