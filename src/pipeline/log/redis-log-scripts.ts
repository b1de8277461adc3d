/**
 * The Lua of the Redis log (`redis-log.ts`). Every script of a stream takes the same four keys, in
 * one cluster slot (`streamKeys`' `{…}` tag): KEYS[1] the log (a Redis stream of `e` → event JSON),
 * KEYS[2] its epoch, KEYS[3] `used` (the epoch has had events), KEYS[4] `bytes` (`BYTES_LOAD`).
 */

/**
 * The stream's byte total, a hash in KEYS[4] beside the log: how `EVENT_LOG_STREAM_MAX_BYTES` is
 * kept without reading the whole stream on every append. An entry's bytes are those of its
 * event's JSON as stored (Redis's own overhead per entry, tens of bytes, is not counted: the count
 * bound covers it).
 *
 * - `known`: the exact bytes of the kept entries from `since` on;
 * - `guess`: at least the bytes of the kept entries before `since` (0 when there are none);
 * - `last`, `length`: the newest entry and the log's length when the hash was written.
 *
 * The total (`known + guess`) is never below what the log holds, and only this version's appends
 * write the hash. It is taken as in doubt when it is missing (lost, evicted, written by no one
 * yet), or when the log changed since it was written: entries after `last` or another length.
 * That is what instances of the previous version leave during a rolling upgrade — they append and
 * trim by count and age without touching the hash. The log is then measured again with
 * MEMORY USAGE (a walk over its nodes, not over its entries: no event is read), which counts more
 * than the JSON (the nodes' headers and allocation slack, entries deleted but not yet freed), and
 * the total continues exactly from the next entry on: `guess` drops by each measured entry's bytes
 * as it is trimmed (never below 0), and to 0 once the last of them is gone. So while instances of
 * both versions append to one stream, the log keeps at most the bound after each append of this
 * version, plus what the previous version's appends have added since (bounded by its count and
 * age, as before); afterwards the total is exact again once the measured entries are gone.
 *
 * BYTES_LOAD runs before the first write of an append: a script Redis refuses for memory
 * (`noeviction`) fails at its first write, and has then written nothing.
 */
const BYTES_LOAD = `
local length = redis.call('XLEN', KEYS[1])
local state = redis.call('HMGET', KEYS[4], 'known', 'guess', 'since', 'last', 'length')
local known, guess, since = tonumber(state[1]), tonumber(state[2]), state[3]
if length == 0 or not (known and guess and since and state[4]) or tonumber(state[5]) ~= length
  or #redis.call('XRANGE', KEYS[1], '(' .. state[4], '+', 'COUNT', 1) > 0 then
  known, guess, since = 0, 0, false
  if length > 0 then guess = redis.call('MEMORY', 'USAGE', KEYS[1], 'SAMPLES', '0') end
end
`;

/** The entries an append's TRIM drops at most, by count, bytes and age together. */
const TRIM_LIMIT = 1000;

/**
 * Retention by count and age (ARGV[2], ARGV[3]) and bytes (ARGV[5]), and the stream's lifetime;
 * shared by the append scripts, after BYTES_LOAD and the XADDs (which set `since` and `last`, and
 * add to `known`).
 *
 * The oldest entries go first, a page at a time: those over the count, then — while the total is
 * over the bound, and never the newest, however large — by bytes, then those older than the age.
 * An append drops at most 1,000 entries (`TRIM_LIMIT`) more than it added (`added`, set by the
 * append scripts), whichever bound drops them: the next ones drop the rest, so a stream far over
 * its bound (filled by an earlier version, which kept no byte total, or its bound lowered) comes
 * under it over a few appends rather than in one script holding Redis — and a batch of more than
 * 1,000 events may drop as many entries as it added: a stream of events of like sizes is left
 * within its bound (a batch of events far larger than the oldest can leave it over, until later
 * appends drop the rest). The work is proportional to the entries dropped, each read once for its size (bytes pages
 * of 1, 2, 4…, within what is left of the limit, so at most about as many are read as dropped).
 *
 * Entries come oldest first: the first one from `since` on means every measured entry is gone, and
 * with them what `guess` held beyond their JSON (MEMORY USAGE's surplus) — `guess` is 0 from there,
 * so the surplus never drops an exactly counted entry.
 *
 * Retention deletes with XDEL rather than XTRIM: XDEL records the stream's `max-deleted-entry-id`
 * (XTRIM does not, in Redis 7.0), which is how a reader tells a cursor whose successors are gone
 * from one that lost nothing — whichever bound dropped them. Age uses Redis's own clock (stream
 * ids are Redis time), not the appender's.
 */
const TRIM = `
local function bytesOf(entry)
  local n = 0
  for i = 2, #entry[2], 2 do n = n + #entry[2][i] end
  return n
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if am ~= bm then return tonumber(am) < tonumber(bm) end
  return tonumber(as) < tonumber(bs)
end
local limit = ${TRIM_LIMIT} + added
local left = redis.call('XLEN', KEYS[1])
local byCount = math.min(math.max(left - tonumber(ARGV[2]), 0), limit)
local maxBytes = tonumber(ARGV[5])
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local expired = oldest > 0 and '(' .. string.format('%d', oldest) .. '-0'
local dropped, after, page = 0, '-', 1
while left > 1 and dropped < limit do
  local entries
  local byBytes = false
  if dropped < byCount then
    entries = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', byCount - dropped)
  elseif known + guess > maxBytes then
    byBytes = true
    entries = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', math.min(page, limit - dropped))
    page = math.min(page * 2, 128)
  elseif expired then
    entries = redis.call('XRANGE', KEYS[1], after, expired, 'COUNT', limit - dropped)
  else
    break
  end
  local doomed = {}
  for _, entry in ipairs(entries) do
    if guess > 0 and not before(entry[1], since) then guess = 0 end
    if left == 1 or (byBytes and known + guess <= maxBytes) then break end
    doomed[#doomed + 1] = entry[1]
    local size = bytesOf(entry)
    if guess > 0 and before(entry[1], since) then guess = math.max(guess - size, 0) else known = math.max(known - size, 0) end
    left = left - 1
  end
  if #doomed == 0 then break end
  redis.call('XDEL', KEYS[1], unpack(doomed))
  dropped = dropped + #doomed
  after = '(' .. doomed[#doomed]
end
if guess > 0 and dropped > 0 and #redis.call('XRANGE', KEYS[1], '-', '(' .. since, 'COUNT', 1) == 0 then guess = 0 end
redis.call('HSET', KEYS[4], 'known', known, 'guess', guess, 'since', since, 'last', last, 'length', left)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
`;

/**
 * The stream's epoch as HEAD and the appends find it. KEYS: log, epoch, used (set by every append:
 * the epoch has had events). Sets `epoch`: false when there is none, or when its log is gone
 * although it had events — Redis lost the log alone (evicted, deleted): continuing the epoch would
 * hide the gap, so a new one replaces it. An epoch that never had an event (HEAD's, a quiet topic's)
 * continues. The epoch's value stays the plain epoch, as instances of earlier versions read it.
 */
const EPOCH = `
local epoch = redis.call('GET', KEYS[2])
if epoch and redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  epoch = false
end
`;

/**
 * EPOCH for the appends: the epoch the events go in (ARGV[1], the candidate, when there is none
 * that may continue); STORE_EPOCH stores it and marks it used once an event is in the log — a
 * script's writes before an error stay, so an append that fails (a log key of another type) must
 * leave the keys as it found them.
 */
const APPEND_EPOCH = `
${EPOCH}
${BYTES_LOAD}
local fresh = not epoch
epoch = epoch or ARGV[1]
`;

/** After APPEND_EPOCH and the first XADD (before TRIM, which sets the keys' expiry). */
const STORE_EPOCH = `
if fresh then redis.call('SET', KEYS[2], epoch) end
redis.call('SET', KEYS[3], '1')
`;

/**
 * Appends and publishes in one script: Redis runs scripts one at a time, so the order in which
 * events enter a stream's log is the order in which every process receives them live, whichever
 * instance appended them. The epoch is created on first use and expires with the stream, so a
 * stream that Redis forgot (restart without persistence, eviction, idle past retention) comes
 * back with a new epoch and old cursors get RESYNC_REQUIRED; so does a log Redis forgot while its
 * epoch survived (`EPOCH`).
 *
 * KEYS: log, epoch, used, bytes. ARGV: candidate epoch, max events, max age (ms), channel, max
 * bytes, event JSON. The live frame is `E<epoch>\n<id>\n<event JSON>`.
 */
export const APPEND = `
${APPEND_EPOCH}
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[6])
local last, added = id, 1
since = since or id
known = known + #ARGV[6]
${STORE_EPOCH}
${TRIM}
redis.call('PUBLISH', ARGV[4], 'E' .. epoch .. '\\n' .. id .. '\\n' .. ARGV[6])
return {epoch, id}
`;

/**
 * APPEND for several events of one stream: each is added and published in order, then the stream
 * is trimmed once. KEYS: log, epoch, used, bytes. ARGV: candidate epoch, max events, max age (ms),
 * channel, max bytes, event JSON… Returns {epoch, id…}.
 */
export const APPEND_MANY = `
${APPEND_EPOCH}
local result = {epoch}
local last
local added = #ARGV - 5
for i = 6, #ARGV do
  last = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  since = since or last
  known = known + #ARGV[i]
  redis.call('PUBLISH', ARGV[4], 'E' .. epoch .. '\\n' .. last .. '\\n' .. ARGV[i])
  result[#result + 1] = last
end
${STORE_EPOCH}
${TRIM}
return result
`;

/**
 * The head of a stream. Creates the epoch (with the stream's lifetime, not used yet) only when
 * there is none that may continue (`EPOCH`), and never extends an existing epoch alone: an epoch
 * must not outlive its log, or a log recreated after expiry would continue an old epoch and hide
 * the gap. A new epoch comes with its log, empty (an entry added and trimmed at once): so an
 * epoch of this version without its log has lost it, which `KEEP_ALIVE` relies on. The byte total
 * is left alone: the next append finds the log empty and starts it at 0 (`BYTES_LOAD`).
 *
 * With "may create" (ARGV[3]) '0' it creates nothing and returns 0 where it would have created
 * the epoch: the caller asks its budget of new streams (`HeadOptions.beforeCreate`) and runs it
 * again with '1'. Absent, it creates, as before the flag existed. The keys it writes are the same
 * either way, so instances of earlier versions (their own HEAD, without the flag) read them as ever.
 *
 * KEYS: log, epoch, used, bytes. ARGV: candidate epoch, max age (ms), may create ('0' or '1').
 * Returns {epoch, last id}, or 0 (not created).
 */
export const HEAD = `
${EPOCH}
if not epoch and ARGV[3] == '0' then return 0 end
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'h', '')
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {epoch, last}
`;

/**
 * Extends a stream's keys to `maxAgeMs` from now, as an append's TRIM does, when its epoch and its
 * log are both there (HEAD makes a new epoch's log with it). An epoch without its log — lost with
 * its `used` mark or without it (eviction), or made by an earlier version's HEAD — is not extended:
 * it expires within `maxAgeMs`, as before, and a log that was lost shows as a new history. (The
 * previous version's KEEP_ALIVE does not extend `bytes`: when it expires before the log, the next
 * append measures the log again.)
 * KEYS: log, epoch, used, bytes. ARGV: max age (ms).
 */
export const KEEP_ALIVE = `
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[4], ARGV[1])
return 1
`;

/** The keys every script takes, in KEYS order. */
type StreamKeyArgs = [log: string, epochKey: string, usedKey: string, bytesKey: string];

export type KeepAliveCommand = (...args: [...StreamKeyArgs, maxAgeMs: number]) => Promise<number>;

export type AppendManyCommand = (
  ...args: [...StreamKeyArgs, epoch: string, maxEvents: number, maxAgeMs: number, channel: string, maxBytes: number, ...json: string[]]
) => Promise<string[]>;

/** HEAD's answer where "may create" was '0' and the stream has no epoch that may continue. */
export const NOT_CREATED = 0;

export type HeadCommand = (...args: [...StreamKeyArgs, epoch: string, maxAgeMs: number, mayCreate: '0' | '1']) => Promise<[string, string] | typeof NOT_CREATED>;

export type AppendCommand = (
  ...args: [...StreamKeyArgs, epoch: string, maxEvents: number, maxAgeMs: number, channel: string, maxBytes: number, json: string]
) => Promise<[string, string]>;
