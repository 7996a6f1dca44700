/**
 * Appends to the audit stream with a hash chain: every entry carries the hash of the one before it and
 * its own, sha1(prev + "\n" + fields joined by "\n"), and the stream's head hash is kept beside it.
 * Rewriting, removing or reordering an entry breaks the chain at that point, which `shipbot audit
 * verify` reports. Every writer goes through this function, inside its own script, so the chain has no
 * gaps and costs no extra round trip.
 */
export const auditAppendLua = `
local function auditAppend(audit, auditMax, fields)
  local head = audit .. ':head'
  local prev = redis.call('GET', head) or ''
  local hash = redis.sha1hex(prev .. '\\n' .. table.concat(fields, '\\n'))
  local id = redis.call('XADD', audit, 'MAXLEN', '~', auditMax, '*', 'prev', prev, 'hash', hash, unpack(fields))
  redis.call('SET', head, hash)
  return id
end
`;
