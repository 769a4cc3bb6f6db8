-- The cluster's topology: one JSON value, changed only here, so that two
-- callers (two coordinators, two `yoco reshard`) can never interleave.
-- KEYS[1] the topology, KEYS[2] the change stream, KEYS[3] the store's meta.
-- ARGV[1] op: seed | begin | abort | commit; ARGV[2] k (seed, begin) or the
-- epoch to commit; ARGV[3] now (ms); ARGV[4] (begin) the next epoch's head id
-- ('' = the current head).
local raw = redis.call('GET', KEYS[1])
local op = ARGV[1]
local now = tonumber(ARGV[3])
if op == 'seed' then
  if raw then return raw end
  raw = cjson.encode({ epoch = 1, k = tonumber(ARGV[2]), lastEpoch = 1, switchedAt = 0 })
  redis.call('SET', KEYS[1], raw)
  return raw
end
if not raw then return redis.error_reply('NO_TOPOLOGY no topology on record yet: no shard has started') end
local t = cjson.decode(raw)
if op == 'begin' then
  local k = tonumber(ARGV[2])
  -- The head the current epoch runs: the topology's once a rollout set one, else the store's meta.
  local head = t.headId or redis.call('HGET', KEYS[3], 'head') or ''
  local nextHead = ARGV[4] ~= '' and ARGV[4] or head
  if t.next then return redis.error_reply('IN_PROGRESS epoch ' .. t.next.epoch .. ' (k=' .. t.next.k .. ') is in progress: wait for it, or abort it') end
  if k == t.k and nextHead == head then return redis.error_reply('UNCHANGED the cluster already has k=' .. k .. (ARGV[4] ~= '' and (' and head ' .. head) or '')) end
  -- Where the change begins: a replica of the next epoch must have applied at least this much.
  local from = '0-0'
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[2])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then from = info[i + 1] end
    end
  end
  -- Epochs are never reused: an aborted one's number stays spent.
  local epoch = math.max(t.epoch, t.lastEpoch or t.epoch) + 1
  t.lastEpoch = epoch
  t.next = { epoch = epoch, k = k, startedAt = now, fromId = from }
  if nextHead ~= head then t.next.headId = nextHead end
elseif op == 'abort' then
  if not t.next then return redis.error_reply('NOT_IN_PROGRESS no change is in progress') end
  t.next = nil
elseif op == 'commit' then
  -- Already committed (by another coordinator) or aborted meanwhile: nothing to do.
  if not t.next or t.next.epoch ~= tonumber(ARGV[2]) then return raw end
  t.previous = { epoch = t.epoch, k = t.k, headId = t.headId }
  t.epoch = t.next.epoch
  t.k = t.next.k
  if t.next.headId then
    -- The new head is the cluster's from now on: the meta says so to everything that reads it.
    t.headId = t.next.headId
    redis.call('HSET', KEYS[3], 'head', t.headId)
  end
  t.switchedAt = now
  t.next = nil
else
  return redis.error_reply('BAD_OP ' .. tostring(op))
end
raw = cjson.encode(t)
redis.call('SET', KEYS[1], raw)
return raw
