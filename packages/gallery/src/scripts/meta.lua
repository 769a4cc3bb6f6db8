--[[
  The store's meta: the vector width and the cluster's head id, set by the
  first process that uses the store, checked by every other.

  KEYS: meta. ARGV: dim, head id ('' = leave the head alone).
  Returns {dim, head} as stored.
]]
redis.call('HSETNX', KEYS[1], 'dim', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], 'head', ARGV[2]) end
return {redis.call('HGET', KEYS[1], 'dim'), redis.call('HGET', KEYS[1], 'head') or ''}
