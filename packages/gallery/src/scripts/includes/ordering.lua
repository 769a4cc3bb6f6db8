--[[
  Writes carry a sequence number (the enrolment job's, in enqueue order) so
  that retried or reordered jobs still end as if applied in order: a subject's
  barrier is the sequence of its last applied replace or remove; anything at or
  below it is stale and skipped, and a replace or remove only deletes
  templates older than itself. Sequence 0 means unordered (always applies).
]]

-- True when a replace or remove at or after `seq` was already applied.
local function isStale(barrierKey, seq)
  return seq > 0 and tonumber(redis.call('GET', barrierKey) or '0') >= seq
end

-- Deletes the subject's templates older than `seq` (all of them for 0) from its slot and
-- its own hash; returns their ids.
local function removeOlder(slotKey, subjectKey, seq)
  local old = redis.call('HGETALL', subjectKey)
  local ids = {}
  for i = 1, #old, 2 do
    if seq == 0 or tonumber(old[i + 1]) < seq then
      redis.call('HDEL', slotKey, old[i])
      redis.call('HDEL', subjectKey, old[i])
      table.insert(ids, old[i])
    end
  end
  return ids
end

-- Records a replace or remove as the subject's barrier (it expires: only late retries need it).
-- `seq` as the caller sent it: a string, written back exactly as it came.
local function setBarrier(barrierKey, seq, ttlSeconds)
  if tonumber(seq) > 0 then redis.call('SET', barrierKey, seq, 'EX', ttlSeconds) end
end

-- A backup or a restore holds the fence (its value a token of its own): other writes wait until it is gone.
local function fenced(fenceKey, token)
  local holder = redis.call('GET', fenceKey)
  return holder and holder ~= token
end
