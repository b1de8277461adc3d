/**
 * The Lua scripts of the document cache (`document-cache.ts`): every decision that must be atomic
 * in Redis. Entry fields: `ep` epoch, `r` revision, `d` data, `x` deleted, `c`/`u` created/updated
 * (ms), `ceil` ceiling, `f` revision known to be in Postgres, `lg` the lease generation its ceiling
 * was granted under, `k` the document key (JSON), `pe` the event of a change not flushed yet (sync
 * durability: the flush marks it unpublished in Postgres), `wt` the write token of the change it
 * holds (`CONFIRM`); while a change not acknowledged yet (sync durability) waits for Postgres, `sr`,
 * `sd`, `sx`, `sc`, `su`: the state Postgres has. Beside the entry, such a change has a wait mark
 * (`document-cache.ts`) until its outcome is known.
 */

/** The fields of the state Postgres has, kept beside a change not acknowledged yet. */
const SAVED = "'sr', 'sd', 'sx', 'sc', 'su'";

/**
 * KEYS: entry, epoch. ARGV: ttl ms. Returns {status, ep, r, d, x, c, u, ceil, f, lg, sr, sd, sx,
 * sc, su} ('' for a field not set) or false.
 */
export const READ = `
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'd', 'x', 'c', 'u', 'ceil', 'f', 'lg', ${SAVED})
if not f[1] then return false end
local status = 'hit'
if f[1] ~= redis.call('GET', KEYS[2]) then status = 'stale'
elseif tonumber(f[8]) >= tonumber(f[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {status, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9] or '', f[10] or '', f[11] or '', f[12] or '', f[13] or '', f[14] or ''}
`;

/** Marks KEYS[1] dirty in KEYS[3] by Redis time, and keeps it from expiring. */
const MARK_DIRTY = `
local function mark_dirty()
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[3], 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), KEYS[1])
  redis.call('PERSIST', KEYS[1])
end
`;

/**
 * KEYS: entry, epoch, dirty. ARGV: epoch, replaced epoch ('' for none), r, d, x, c, u, ceil, f,
 * key, ttl ms, lease generation of the ceiling ('' for none). When the state installed dirty is
 * the replaced entry's own change (same r and u: a change Postgres lacks, kept from a stale
 * entry), its `pe` goes with it: the flush marks that event unpublished in Postgres, and without
 * it the change would be saved with no event ever published (its wait, of the old epoch, finds it
 * committed and publishes only a marked event). The same change keeps its `wt`, dirty or not: its
 * writer may still be looking for it (`CONFIRM`).
 */
export const INSTALL = `${MARK_DIRTY}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'race' end
local old = redis.call('HMGET', KEYS[1], 'ep', 'r', 'u', 'pe', 'wt')
if (old[1] or '') ~= ARGV[2] then return 'race' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'r', ARGV[3], 'd', ARGV[4], 'x', ARGV[5], 'c', ARGV[6], 'u', ARGV[7], 'ceil', ARGV[8], 'f', ARGV[9], 'k', ARGV[10], 'lg', ARGV[12])
local same = old[2] == ARGV[3] and old[3] == ARGV[7]
if same and old[5] then redis.call('HSET', KEYS[1], 'wt', old[5]) end
if tonumber(ARGV[9]) < tonumber(ARGV[3]) then
  mark_dirty()
  if same and old[4] then redis.call('HSET', KEYS[1], 'pe', old[4]) end
else
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
end
return 'ok'
`;

/**
 * KEYS: entry, epoch, dirty, lease, the change's wait mark, the document's unpublished events, the
 * set of documents with unpublished events, the write's fence (`CONFIRM`). ARGV: epoch, base
 * revision, r, d, x, c, u, '1' when the write is acknowledged before Postgres has it (it needs the
 * ceiling of the current lease), the wait mark's ttl ms, the change's event ('' for none: nothing
 * marked), the write token (kept as `wt`). A fenced write — its writer gave up on its reply and
 * looked for it first — changes nothing ('void'). Acknowledged first, the event is marked unpublished here
 * (its revision's field; the document in the set by Redis time) and the answer is 'ok-behind' when
 * an earlier one is still marked. Otherwise the write is answered once Postgres has it: a clean
 * entry's state is kept as the one Postgres has, for readers until then, the change gets its wait
 * mark, and its event is kept in `pe` for the flush (which marks it unpublished in Postgres).
 */
export const WRITE = `${MARK_DIRTY}
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'ceil', 'lg', 'f')
if not f[1] then return 'miss' end
if f[1] ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'stale' end
if f[2] ~= ARGV[2] then return 'race' end
if redis.call('EXISTS', KEYS[8]) == 1 then return 'void' end
local answer = 'ok'
if ARGV[8] == '1' then
  local lease = redis.call('GET', KEYS[4])
  if not lease or f[4] ~= lease or tonumber(ARGV[3]) > tonumber(f[3]) then return 'ceiling' end
  if ARGV[10] ~= '' then
    redis.call('HSET', KEYS[6], ARGV[3], ARGV[10])
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[7], 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), KEYS[1])
    if redis.call('HLEN', KEYS[6]) > 1 then answer = 'ok-behind' end
  end
else
  if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'pe', ARGV[10]) else redis.call('HDEL', KEYS[1], 'pe') end
  if tonumber(f[5]) >= tonumber(f[2]) then
    local s = redis.call('HMGET', KEYS[1], 'r', 'd', 'x', 'c', 'u')
    redis.call('HSET', KEYS[1], 'sr', s[1], 'sd', s[2], 'sx', s[3], 'sc', s[4], 'su', s[5])
  end
  redis.call('SET', KEYS[5], 1, 'PX', ARGV[9])
end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'd', ARGV[4], 'x', ARGV[5], 'c', ARGV[6], 'u', ARGV[7], 'wt', ARGV[11])
mark_dirty()
return answer
`;

/**
 * KEYS: entry, epoch, the change's wait mark. ARGV: epoch, r and u of the change, the mark's ttl
 * ms. Where a change not acknowledged yet stands:
 * - 'pending': the entry holds it, not flushed; its mark is kept alive;
 * - 'committed': the entry holds it flushed, or has moved past it with its mark still there (the
 *   next write of a document flushes its waiting change or takes it back, and only a take-back
 *   deletes the mark);
 * - 'gone': taken back (the entry is back at or below its revision, with other content, or moved
 *   on without its mark);
 * - 'moved': its epoch ended (Redis restarted with its data) and the entry — left in that epoch,
 *   or reloaded into the new one by an instance — holds it, not flushed: it reaches Postgres at
 *   that entry's flush (or the sweep's);
 * - 'lost': the entry is gone, or of another epoch without it unflushed; only Postgres's row can tell.
 * Once known, the mark is deleted.
 */
export const SETTLE = `
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'u', 'f')
local verdict = 'gone'
if not f[1] or f[1] ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[1] then
  verdict = 'lost'
  if f[1] and f[2] == ARGV[2] and f[3] == ARGV[3] and (tonumber(f[4]) or 0) < tonumber(f[2]) then verdict = 'moved' end
elseif f[2] == ARGV[2] and f[3] == ARGV[3] then
  if tonumber(f[4]) < tonumber(f[2]) then
    redis.call('SET', KEYS[3], 1, 'PX', ARGV[4])
    return 'pending'
  end
  verdict = 'committed'
elseif tonumber(f[2]) > tonumber(ARGV[2]) and redis.call('EXISTS', KEYS[3]) == 1 then
  verdict = 'committed'
end
redis.call('DEL', KEYS[3])
return verdict
`;

/**
 * KEYS: entry, epoch, dirty, the change's wait mark. ARGV: r and u of the change, then the state
 * Postgres has (r, d, x, c, u), ttl ms. Puts the entry back to the state Postgres has, clean, if it
 * still holds exactly that change unflushed (a later change of the same revision, or the change
 * once flushed, is left alone), and deletes the change's mark, so that its wait on any instance
 * sees it gone. Whatever the entry's epoch: a change whose epoch ended (Redis restarted with its
 * data) is still in the entry left in that epoch, or in the one an instance reloaded into the new
 * epoch, and either would flush it later — though Postgres refused it and its writer was told so.
 * An entry left in an ended epoch is deleted rather than put back: an instance reloading it
 * (`INSTALL`, with the change as it read it) then finds it replaced and reads again. Returns 1 if
 * taken back.
 */
export const TAKE_BACK = `
local f = redis.call('HMGET', KEYS[1], 'r', 'u', 'f', 'ep')
if f[1] ~= ARGV[1] or f[2] ~= ARGV[2] or (tonumber(f[3]) or 0) >= tonumber(f[1]) then return 0 end
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('DEL', KEYS[4])
if f[4] ~= redis.call('GET', KEYS[2]) then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'd', ARGV[4], 'x', ARGV[5], 'c', ARGV[6], 'u', ARGV[7], 'f', ARGV[3])
redis.call('HDEL', KEYS[1], 'pe', 'wt', ${SAVED})
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
`;

/**
 * KEYS: entry, epoch, the write's fence. ARGV: epoch, base revision, write token, fence ttl ms.
 * After a WRITE whose reply was lost: fences it first — should it reach Redis only now (a late
 * packet of a dropped connection), it changes nothing — then tells whether it had run:
 * - 'landed': the entry holds its change (`wt`);
 * - 'absent': the entry, of the write's epoch, is still at the base revision without it (it did
 *   not run, or in sync durability was taken back: not saved either way);
 * - 'unknown': the entry moved on, or is gone or of another epoch.
 */
export const CONFIRM = `
redis.call('SET', KEYS[3], 1, 'PX', ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'wt')
if f[3] == ARGV[3] then return 'landed' end
if f[1] == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[1] and f[2] == ARGV[2] then return 'absent' end
return 'unknown'
`;

/**
 * Takes a ceiling Postgres granted under lease generation `g` (the ceiling already granted under
 * the same generation may be higher; one of an older generation is void). Nothing when the entry
 * is of another epoch or `g` is no longer the current generation.
 */
const TAKE_CEILING = `
local function take_ceiling(epoch, ceiling, g, fields)
  if fields[1] ~= epoch or g == '' or redis.call('GET', KEYS[#KEYS]) ~= g then return end
  local ceil = tonumber(ceiling)
  if fields[3] == g then ceil = math.max(ceil, tonumber(fields[2])) end
  redis.call('HSET', KEYS[1], 'ceil', ceil, 'lg', g)
end
`;

/** KEYS: entry, lease. ARGV: epoch, ceiling, lease generation. */
export const RAISE = `${TAKE_CEILING}
take_ceiling(ARGV[1], ARGV[2], ARGV[3], redis.call('HMGET', KEYS[1], 'ep', 'ceil', 'lg'))
return 0
`;

/**
 * KEYS: entry, dirty, lease. ARGV: epoch, flushed revision, ceiling, its lease generation ('' when
 * Postgres granted none), ttl ms, u of the flushed change ('' when not known). Returns -1 when the
 * entry is gone but was still listed as dirty (its unflushed changes are lost), 0 or 1 otherwise.
 * An entry behind the flushed revision, or holding another change of it, was taken back (or
 * written again after a take-back) while the flush committed: it disagrees with Postgres, and is
 * deleted, to be loaded again from the row — kept, it would serve a state Postgres no longer has,
 * and a later change on it would be counted flushed without reaching Postgres. So is a clean entry
 * of another epoch behind it (reloaded from the row after a take-back deleted the flush's entry).
 */
export const FLUSHED = `${TAKE_CEILING}
local f = redis.call('HMGET', KEYS[1], 'ep', 'ceil', 'lg', 'r', 'f', 'u')
if not f[1] then return -redis.call('ZREM', KEYS[2], KEYS[1]) end
if f[1] ~= ARGV[1] then
  if tonumber(f[5]) >= tonumber(f[4]) and tonumber(f[4]) < tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
  return 0
end
if tonumber(f[4]) < tonumber(ARGV[2]) or (tonumber(f[4]) == tonumber(ARGV[2]) and ARGV[6] ~= '' and f[6] ~= ARGV[6]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  return 1
end
local flushed = math.max(tonumber(f[5]), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'f', flushed)
take_ceiling(ARGV[1], ARGV[3], ARGV[4], f)
if tonumber(f[4]) <= flushed then
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('HDEL', KEYS[1], 'pe', ${SAVED})
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
`;

/** KEYS: lock. ARGV: token. Deletes the lock only if it is still the token's. */
export const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS: epoch, run id, lease. ARGV: run id ('' to only ensure), candidate epoch, candidate lease
 * generation. Returns {epoch, lease generation}.
 */
export const EPOCH = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
redis.call('SET', KEYS[3], ARGV[3], 'NX')
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[3])}
`;

/** KEYS: epoch, lease. ARGV: new lease generation. Returns {epoch, the generation it replaced} or false. */
export const RENEW_LEASE = `
local epoch = redis.call('GET', KEYS[1])
local old = redis.call('GET', KEYS[2])
if not epoch or not old then return false end
redis.call('SET', KEYS[2], ARGV[1])
return {epoch, old}
`;
