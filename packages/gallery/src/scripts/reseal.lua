--[[
  Replaces one template record by its re-sealed form, only if the record is
  still the one that was read: a write or removal since then wins.

  KEYS: slot hash.  ARGV: template id, the record as read, the re-sealed record.
  Returns 1 when replaced, 0 when the record had changed (or is gone).
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
