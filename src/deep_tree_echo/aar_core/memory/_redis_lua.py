"""Lua scripts of :class:`RedisStore`: each runs atomically on the server (no interleaving).

Version comparison matches Python's (numbers as numbers, node ids bytewise, as ``str`` compares
code points), so Redis orders versions exactly as the other stores do.
"""

from __future__ import annotations

from typing import Final

# ``newer(a, b)``: true when version text ``a`` orders after ``b``. Numbers are compared as
# numbers and node ids byte by byte (Lua's ``<`` on strings follows the server's locale).
LUA_NEWER: Final = """
local function newer(a, b)
  local aw, al, an = string.match(a, '^(%d+)-(%d+)-(.*)$')
  local bw, bl, bn = string.match(b, '^(%d+)-(%d+)-(.*)$')
  if not aw then return redis.error_reply('malformed version ' .. a) end
  if not bw then return true end
  aw, al, bw, bl = tonumber(aw), tonumber(al), tonumber(bw), tonumber(bl)
  if aw ~= bw then return aw > bw end
  if al ~= bl then return al > bl end
  for i = 1, math.min(#an, #bn) do
    local x, y = string.byte(an, i), string.byte(bn, i)
    if x ~= y then return x > y end
  end
  return #an > #bn
end
"""

# Postings of a tenant live beside its records: ``{base}p:{term}`` is a hash id -> "tf,dl"
# (terms are hex-encoded ``tokenize`` output), ``{base}stats`` holds n (indexed documents) and
# total (their summed length), ``{base}exp`` is a sorted set id -> expires_at. A record's hash
# keeps its terms in field ``terms`` ("hex:tf hex:tf ...") and its length in ``dl`` so the next
# write can take them out again. Indexing changes in the same script as the record: atomic.
LUA_UNINDEX: Final = """
local function unindex(base, id, rkey)
  local old = redis.call('HGET', rkey, 'terms')
  if old then
    for term in string.gmatch(old, '([^: ]+):%d+') do
      redis.call('HDEL', base .. 'p:' .. term, id)
    end
    redis.call('HINCRBY', base .. 'stats', 'n', -1)
    redis.call('HINCRBY', base .. 'stats', 'total', -tonumber(redis.call('HGET', rkey, 'dl')))
  end
  redis.call('ZREM', base .. 'exp', id)
end
"""

# KEYS: record, index, tenants set. ARGV: id, version, base, tenant, dl, k, then k term/tf
# pairs, then the hash's field/value pairs (``v`` included).
LUA_PUT_IF_NEWER: Final = (
    LUA_NEWER
    + LUA_UNINDEX
    + """
local current = redis.call('HGET', KEYS[1], 'v')
if current then
  local ok = newer(ARGV[2], current)
  if type(ok) == 'table' then return ok end
  if not ok then return 0 end
end
local id, base, dl, k = ARGV[1], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
unindex(base, id, KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 7 + 2 * k))
redis.call('ZADD', KEYS[2], 0, id)
redis.call('SADD', KEYS[3], ARGV[4])
if k > 0 or dl >= 0 then
  local terms = {}
  for i = 0, k - 1 do
    local term, tf = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
    redis.call('HSET', base .. 'p:' .. term, id, tf .. ',' .. dl)
    terms[#terms + 1] = term .. ':' .. tf
  end
  redis.call('HSET', KEYS[1], 'terms', table.concat(terms, ' '), 'dl', dl)
  redis.call('HINCRBY', base .. 'stats', 'n', 1)
  redis.call('HINCRBY', base .. 'stats', 'total', dl)
  local exp = redis.call('HGET', KEYS[1], 'expires_at')
  if exp then redis.call('ZADD', base .. 'exp', exp, id) end
end
return 1
"""
)

# KEYS: base. ARGV: now, k1, b, offset, count, then term/query-count pairs. Lucene BM25 (the
# in-memory index's formula) over the postings of the query terms, expired records left out;
# returns the slice [offset, offset + count) of the ranking as id, score pairs.
LUA_SEARCH: Final = """
local base = KEYS[1]
local now, k1, b = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local offset, count = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(redis.call('HGET', base .. 'stats', 'n') or '0')
if n <= 0 then return {} end
local avgdl = tonumber(redis.call('HGET', base .. 'stats', 'total') or '0') / n
local c1, c2 = k1 * (1 - b), 0
if avgdl > 0 then c2 = k1 * b / avgdl end
local acc = {}
for i = 6, #ARGV, 2 do
  local posting = redis.call('HGETALL', base .. 'p:' .. ARGV[i])
  local df = #posting / 2
  if df > 0 then
    local wk = math.log(1 + (n - df + 0.5) / (df + 0.5)) * tonumber(ARGV[i + 1]) * (k1 + 1)
    for j = 1, #posting, 2 do
      local tf, dl = string.match(posting[j + 1], '^(%d+),(%d+)$')
      tf, dl = tonumber(tf), tonumber(dl)
      local d = posting[j]
      acc[d] = (acc[d] or 0) + wk * tf / (tf + c1 + c2 * dl)
    end
  end
end
for _, d in ipairs(redis.call('ZRANGEBYSCORE', base .. 'exp', '-inf', now)) do acc[d] = nil end
local ranked = {}
for d, s in pairs(acc) do ranked[#ranked + 1] = {d, s} end
table.sort(ranked, function(x, y)
  if x[2] ~= y[2] then return x[2] > y[2] end
  return x[1] > y[1]
end)
local out = {}
for i = offset + 1, math.min(#ranked, offset + count) do
  out[#out + 1] = ranked[i][1]
  out[#out + 1] = string.format('%.17g', ranked[i][2])
end
return out
"""

# KEYS: record. ARGV: count, at. No-op (0) when the record does not exist.
LUA_RECORD_ACCESS: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'access_count', ARGV[1])
local last = redis.call('HGET', KEYS[1], 'last_access')
if not last or (tonumber(last) or -math.huge) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'last_access', ARGV[2])
end
return 1
"""

# KEYS: n record keys, then the index. ARGV: n expected versions, the n ids, then the base.
# Every check runs before any removal; the script is atomic, so nothing sees a partial purge.
LUA_PURGE: Final = LUA_UNINDEX + """
local n = #KEYS - 1
local hits = {}
for i = 1, n do
  if redis.call('HGET', KEYS[i], 'v') == ARGV[i] then hits[#hits + 1] = i end
end
local removed = {}
for _, i in ipairs(hits) do
  unindex(ARGV[2 * n + 1], ARGV[n + i], KEYS[i])
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[n + 1], ARGV[n + i])
  removed[#removed + 1] = ARGV[n + i]
end
return removed
"""
