-- The cluster's topology: one JSON value, changed only here, so that two
-- callers (two coordinators, two `yoco reshard`) can never interleave.
-- KEYS[1] the topology, KEYS[2] the change stream.
-- ARGV[1] op: seed | begin | abort | commit; ARGV[2] k (seed, begin) or the
-- epoch to commit; ARGV[3] now (ms).
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
  if t.next then return redis.error_reply('IN_PROGRESS epoch ' .. t.next.epoch .. ' (k=' .. t.next.k .. ') is in progress: wait for it, or abort it') end
  if k == t.k then return redis.error_reply('UNCHANGED the cluster already has k=' .. k) end
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
elseif op == 'abort' then
  if not t.next then return redis.error_reply('NOT_IN_PROGRESS no change is in progress') end
  t.next = nil
elseif op == 'commit' then
  -- Already committed (by another coordinator) or aborted meanwhile: nothing to do.
  if not t.next or t.next.epoch ~= tonumber(ARGV[2]) then return raw end
  t.previous = { epoch = t.epoch, k = t.k }
  t.epoch = t.next.epoch
  t.k = t.next.k
  t.switchedAt = now
  t.next = nil
else
  return redis.error_reply('BAD_OP ' .. tostring(op))
end
raw = cjson.encode(t)
redis.call('SET', KEYS[1], raw)
return raw
