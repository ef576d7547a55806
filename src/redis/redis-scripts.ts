/*
 * The Lua scripts: each runs atomically on the Redis node that owns the model's hash slot, and touches
 * only that model's keys (declared KEYS give the slot; per-version keys are built from the shared base
 * `<prefix>{tag}:`, so they are in the same slot). See redis-keys.ts for the layout.
 */
import { createHash } from "node:crypto";

export interface RedisScript {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
  readonly keyCount: number;
}

function script(name: string, keyCount: number, body: string): RedisScript {
  const source = `${EXPIRE_HELPERS}\n${body}`;
  return { name, source, sha1: createHash("sha1").update(source).digest("hex"), keyCount };
}

/**
 * A transient version's keys expire `expirationMs` after its commit once it is no longer the latest;
 * with expiration off (0) they get a TTL so long it never runs out, only to make them evictable under
 * `maxmemory-policy volatile-lru` (the latest has no TTL at all: never evicted).
 */
const EXPIRE_HELPERS = `
local EVICTABLE_ONLY_TTL_MS = 3153600000000
-- A transient version's keys (its info and data chunks) and its commit time; nothing for an archived one.
local function transient_version_keys(base, number, info)
  local decoded = cjson.decode(info)
  if decoded.archived then return nil end
  local keys = { base .. 'v:' .. number }
  for i = 0, (decoded.chunks or 0) - 1 do keys[#keys + 1] = base .. 'd:' .. number .. ':' .. i end
  return keys, decoded.storedAtMs
end
local function expire_version_keys(keys, stored_at_ms, expiration_ms)
  for _, key in ipairs(keys) do
    if expiration_ms > 0 then
      redis.call('PEXPIREAT', key, string.format('%d', stored_at_ms + expiration_ms))
    else
      redis.call('PEXPIRE', key, EVICTABLE_ONLY_TTL_MS)
    end
  end
end
`;

/**
 * KEYS: model, generation, counter, numbers.
 * ARGV: base, expected generation, upload id ("" = no data in Redis), chunk count, version body
 * (version-codec.ts), expiration ms, events channel, highest version number allowed, and optionally
 * the token of the claim held (claimNumber) with the number it claimed: the commit then checks the
 * claim is still this one and the number is still the next, and releases the claim; after them,
 * optionally, how far the archive's numbering records now reach (`reserved` is raised to it).
 * Checks the model and its generation (an upload begun before a deletion never lands in a re-created
 * model) and that every chunk of the upload is still there; assigns the next number; renames the
 * chunks into place; makes the new version the latest (no TTL) and gives the previous latest its
 * TTL; publishes the commit. Returns the stored info.
 */
export const COMMIT_VERSION = script(
  "commitVersion",
  4,
  `
local base = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('CMR_NOT_FOUND the model does not exist')
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then
  return redis.error_reply('CMR_NOT_FOUND the model was deleted while the version was uploading')
end
local upload, chunks = ARGV[3], tonumber(ARGV[4])
if upload ~= '' then
  for i = 0, chunks - 1 do
    if redis.call('EXISTS', base .. 'p:' .. upload .. ':' .. i) == 0 then
      return redis.error_reply('CMR_DATA_LOST chunk ' .. i .. ' of the upload left Redis before its commit (expired or evicted: is maxmemory too small?)')
    end
  end
end
local next_number = tonumber(redis.call('GET', KEYS[3]) or '0') + 1
if next_number > tonumber(ARGV[8]) then
  return redis.error_reply('CMR_EXHAUSTED the model has used every version number up to ' .. ARGV[8])
end
local claim = ARGV[9] or ''
if claim ~= '' then
  if redis.call('GET', base .. 'claim') ~= claim then
    return redis.error_reply('CMR_CLAIM_LOST the claim of the version number expired before the commit (the lease ran out)')
  end
  if next_number ~= tonumber(ARGV[10]) then
    return redis.error_reply('CMR_CLAIM_LOST the claimed version number was taken meanwhile')
  end
end
-- Every key written below is touched by a read first. Redis does not undo a script's writes when a
-- later command fails, and on a Redis Cluster whose slot is migrating, any command on a key this node
-- no longer (or not yet) holds fails: the reads fail it here, before the number is taken.
redis.call('EXISTS', base .. 'v:' .. next_number)
if upload ~= '' then
  for i = 0, chunks - 1 do redis.call('EXISTS', base .. 'd:' .. next_number .. ':' .. i) end
end
local reserved = tonumber(ARGV[11] or '0')
local reserved_before = tonumber(redis.call('GET', base .. 'reserved') or '0')
local previous = redis.call('ZRANGE', KEYS[4], -1, -1)[1]
local previous_info = previous and redis.call('GET', base .. 'v:' .. previous)
local previous_keys, previous_stored_at
if previous_info then previous_keys, previous_stored_at = transient_version_keys(base, previous, previous_info) end
if previous_keys then
  for _, key in ipairs(previous_keys) do redis.call('EXISTS', key) end
end
if claim ~= '' then redis.call('DEL', base .. 'claim') end
local number = redis.call('INCR', KEYS[3])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local info = '{"versionNumber":' .. number .. ',"storedAtMs":' .. string.format('%d', now_ms) .. ',' .. ARGV[5]
if upload ~= '' then
  for i = 0, chunks - 1 do
    local key = base .. 'd:' .. number .. ':' .. i
    redis.call('RENAME', base .. 'p:' .. upload .. ':' .. i, key)
    redis.call('PERSIST', key)
  end
end
redis.call('SET', base .. 'v:' .. number, info)
redis.call('ZADD', KEYS[4], number, number)
if reserved > reserved_before then redis.call('SET', base .. 'reserved', reserved) end
if previous_keys then expire_version_keys(previous_keys, previous_stored_at, tonumber(ARGV[6])) end
redis.call('PUBLISH', ARGV[7], '{"type":"version","version":' .. info .. '}')
return info
`,
);

/**
 * KEYS: model, generation, deleting. ARGV: userData JSON, events channel, model id as a JSON string.
 * Creates the model or replaces its user data. Returns {created (0/1), generation}. Refused while a
 * deletion of the model still removes its archive files (see deleteModel): a model created again
 * then would lose the files of its first versions to that removal.
 */
export const PUT_MODEL = script(
  "putModel",
  3,
  `
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('CMR_DELETING model ' .. ARGV[3] .. ' is being deleted (its archive files are being removed): try again in a moment')
end
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'userData', ARGV[1])
local generation = redis.call('GET', KEYS[2]) or '0'
redis.call('PUBLISH', ARGV[2], '{"type":"model","modelId":' .. ARGV[3] .. ',"created":' .. tostring(created) .. '}')
return { created and 1 or 0, generation }
`,
);

/**
 * KEYS: model, generation, counter, numbers. ARGV: base, events channel, model id as a JSON string,
 * and optionally a deletion token with its lease in ms.
 * Deletes the model, its versions and their data, bumps the generation (uploads in flight can no
 * longer commit) and publishes the deletion. With a token, sets the key `deleting` to it for the
 * lease (renewDeletion extends it, endDeletion removes it): until then putModel refuses to create
 * the model again, while the deleting instance removes the archive files.
 * Returns 0 if there was no such model, else the new generation.
 */
export const DELETE_MODEL = script(
  "deleteModel",
  4,
  `
local base = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
-- Every key is read before the first is unlinked (see commitVersion: a failure midway would leave
-- the model half deleted).
redis.call('EXISTS', base .. 'reserved')
local doomed = {}
for _, number in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local key = base .. 'v:' .. number
  local info = redis.call('GET', key)
  if info then
    local decoded = cjson.decode(info)
    for i = 0, (decoded.chunks or 0) - 1 do
      local chunk = base .. 'd:' .. number .. ':' .. i
      redis.call('EXISTS', chunk)
      doomed[#doomed + 1] = chunk
    end
    doomed[#doomed + 1] = key
  end
end
local token = ARGV[4] or ''
if token ~= '' then redis.call('EXISTS', base .. 'deleting') end
for _, key in ipairs(doomed) do redis.call('UNLINK', key) end
redis.call('UNLINK', KEYS[1], KEYS[3], KEYS[4], base .. 'reserved')
if token ~= '' then redis.call('SET', base .. 'deleting', token, 'PX', ARGV[5]) end
local generation = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], '{"type":"deleted","modelId":' .. ARGV[3] .. ',"generation":' .. generation .. '}')
return generation
`,
);

/**
 * KEYS: model, numbers. ARGV: base, from number, count (0 = all), direction ("asc" | "desc").
 * The infos of the versions numbered from `from` up (asc) or down (desc), at most `count`. Numbers
 * whose info expired or was evicted are dropped from the index on the way. NOT_FOUND without the model.
 */
export const LIST_VERSIONS = script(
  "listVersions",
  2,
  `
local base = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('CMR_NOT_FOUND the model does not exist')
end
local from, count, ascending = ARGV[2], tonumber(ARGV[3]), ARGV[4] == 'asc'
local out, offset, batch = {}, 0, 256
while true do
  local numbers
  if ascending then
    numbers = redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf', 'LIMIT', offset, batch)
  else
    numbers = redis.call('ZREVRANGEBYSCORE', KEYS[2], from, '-inf', 'LIMIT', offset, batch)
  end
  for _, number in ipairs(numbers) do
    local info = redis.call('GET', base .. 'v:' .. number)
    if info then
      out[#out + 1] = info
      if count > 0 and #out >= count then return out end
      offset = offset + 1
    else
      redis.call('ZREM', KEYS[2], number)
    end
  end
  if #numbers < batch then return out end
end
`,
);

/**
 * KEYS: model, counter. ARGV: floor. Raises the counter to `floor` (the archive's highest version
 * number) if it is lower, so numbering continues above the archive even on an empty or restarted
 * Redis. Returns the counter. NOT_FOUND without the model.
 */
export const RAISE_COUNTER = script(
  "raiseCounter",
  2,
  `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('CMR_NOT_FOUND the model does not exist')
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then
  redis.call('SET', KEYS[2], ARGV[1])
  return floor
end
return current
`,
);

/**
 * KEYS: model, counter, numbers, generation. ARGV: base, userData JSON, "1" to replace the user
 * data Redis has ("0": only a model Redis lacks gets it), expiration ms, "1" to import nothing into a
 * model this Redis saw a deletion of ("0": import all the same), then pairs of (number, info JSON).
 * Imports a model and its archived versions from the archive: creates what is missing, never
 * overwrites a version (an instance that imports late changes nothing another one already
 * committed), and raises the counter to the highest number imported. A transient latest that an
 * imported version follows gets its TTL, as a commit would give it. Returns the counter; -1,
 * importing nothing, when asked to skip a deleted model and this Redis saw a deletion of it (its
 * generation exists): on a first import, the archive was read before that deletion removed its
 * files, or holds what a deletion left, or the model created again since has every version in
 * Redis already. A reconciliation after a single-mode run (archive-sync.ts) imports all the same:
 * no instance serves meanwhile, and the archive is then the newer.
 */
export const IMPORT_ARCHIVED = script(
  "importArchived",
  4,
  `
local base = ARGV[1]
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'userData', ARGV[2])
else
  redis.call('HSETNX', KEYS[1], 'userData', ARGV[2])
end
local latest_before = redis.call('ZRANGE', KEYS[3], -1, -1)[1]
local highest = 0
for i = 6, #ARGV, 2 do
  local number = tonumber(ARGV[i])
  if redis.call('SET', base .. 'v:' .. ARGV[i], ARGV[i + 1], 'NX') then
    redis.call('ZADD', KEYS[3], number, ARGV[i])
  end
  if number > highest then highest = number end
end
if latest_before and redis.call('ZRANGE', KEYS[3], -1, -1)[1] ~= latest_before then
  local info = redis.call('GET', base .. 'v:' .. latest_before)
  local keys, stored_at
  if info then keys, stored_at = transient_version_keys(base, latest_before, info) end
  if keys then expire_version_keys(keys, stored_at, tonumber(ARGV[4])) end
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current < highest then
  redis.call('SET', KEYS[2], highest)
  return highest
end
return current
`,
);

/**
 * KEYS: model, generation, counter. ARGV: base, token, lease ms, highest version number allowed.
 * Claims the model's next version number for one commit across every instance: a lease on the key
 * `claim` (SET NX PX), so that an archived version's files can be written under its final number
 * before the commit script makes it visible. The number is not taken: a claim that is released or
 * runs out leaves the counter as it was, so the next claim gets the same number (gap-free).
 * Returns {number, generation, reserved}, {0, 0, 0} when the model does not exist, {-1, 0, 0} when
 * another claim holds it; `reserved`: how far the archive's numbering records reach (see commitVersion).
 */
export const CLAIM_NUMBER = script(
  "claimNumber",
  3,
  `
local base = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return { 0, 0, 0 } end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[4]) then
  return redis.error_reply('CMR_EXHAUSTED the model has used every version number up to ' .. ARGV[4])
end
if not redis.call('SET', base .. 'claim', ARGV[2], 'NX', 'PX', ARGV[3]) then return { -1, 0, 0 } end
return {
  tonumber(redis.call('GET', KEYS[3]) or '0') + 1,
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  tonumber(redis.call('GET', base .. 'reserved') or '0'),
}
`,
);

/**
 * KEYS: model, generation, counter. ARGV: floor, generation. Raises the counter to `floor` (the
 * highest number an instance saw committed, which Redis lost) if it is lower and the model is still
 * of that generation, so the lost numbers are never handed out again. Returns the counter before, or
 * -1 when nothing changed (not lower, another generation, no model).
 */
export const RAISE_COUNTER_IN_GENERATION = script(
  "raiseCounterInGeneration",
  3,
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[2]) then return -1 end
local counter = tonumber(redis.call('GET', KEYS[3]) or '0')
if counter >= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[3], ARGV[1])
return counter
`,
);

/** KEYS: model. ARGV: base, token. Releases a claim if it is still this one. */
export const RELEASE_CLAIM = script(
  "releaseClaim",
  1,
  `
if redis.call('GET', ARGV[1] .. 'claim') == ARGV[2] then redis.call('DEL', ARGV[1] .. 'claim') end
return 0
`,
);

/**
 * KEYS: model, counter. ARGV: base, token, claimed number, how far the archive's numbering records
 * reach ("0": unknown). The claimed number cannot be used (the archive holds objects under it that
 * are not this commit's): the counter moves past it without a version (a gap, never a reuse), and the
 * claim is released. Done only while the number is still the next and the claim is this token's or
 * has run out (no other commit holds it); returns 1 when skipped, else 0.
 */
export const SKIP_NUMBER = script(
  "skipNumber",
  2,
  `
local base = ARGV[1]
local holder = redis.call('GET', base .. 'claim')
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
local reserved_before = tonumber(redis.call('GET', base .. 'reserved') or '0')
if (holder and holder ~= ARGV[2]) or counter + 1 ~= tonumber(ARGV[3]) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
if tonumber(ARGV[4]) > reserved_before then redis.call('SET', base .. 'reserved', ARGV[4]) end
if holder then redis.call('DEL', base .. 'claim') end
return 1
`,
);

/** KEYS: model. ARGV: base, token, lease ms. Extends a claim still held by this token; returns 1, else 0. */
export const RENEW_CLAIM = script(
  "renewClaim",
  1,
  `
if redis.call('GET', ARGV[1] .. 'claim') == ARGV[2] then return redis.call('PEXPIRE', ARGV[1] .. 'claim', ARGV[3]) end
return 0
`,
);

/** KEYS: model. ARGV: base, token, lease ms. Extends a deletion's lease still held by this token; returns 1, else 0. */
export const RENEW_DELETION = script(
  "renewDeletion",
  1,
  `
if redis.call('GET', ARGV[1] .. 'deleting') == ARGV[2] then return redis.call('PEXPIRE', ARGV[1] .. 'deleting', ARGV[3]) end
return 0
`,
);

/** KEYS: model. ARGV: base, token. Ends a deletion's lease if it is still this one: the model may be created again. */
export const END_DELETION = script(
  "endDeletion",
  1,
  `
if redis.call('GET', ARGV[1] .. 'deleting') == ARGV[2] then redis.call('DEL', ARGV[1] .. 'deleting') end
return 0
`,
);

/** KEYS: a lease key (e.g. the archive's sync, see RedisRegistryStore). ARGV: token, lease ms. Extends it if this token holds it; returns 1, else 0. */
export const RENEW_LEASE = script(
  "renewLease",
  1,
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`,
);

/** KEYS: a lease key. ARGV: token. Ends the lease if this token still holds it. */
export const END_LEASE = script(
  "endLease",
  1,
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`,
);

export const ALL_SCRIPTS: readonly RedisScript[] = [
  COMMIT_VERSION,
  PUT_MODEL,
  DELETE_MODEL,
  LIST_VERSIONS,
  RAISE_COUNTER,
  IMPORT_ARCHIVED,
  CLAIM_NUMBER,
  RAISE_COUNTER_IN_GENERATION,
  RELEASE_CLAIM,
  RENEW_CLAIM,
  RENEW_DELETION,
  END_DELETION,
  SKIP_NUMBER,
  RENEW_LEASE,
  END_LEASE,
];
