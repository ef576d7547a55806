/**
 * The soak test's mixed traffic, as run by one client: publish transient and
 * archived versions, fetch the latest and random existing versions (checking
 * each one's SHA-256), list models and versions page by page, and create,
 * fill and delete scratch models while uploads race the deletion.
 *
 * Allowed errors (counted, not failures): NOT_FOUND of a transient version
 * (evicted or expired) and NOT_FOUND caused by a scratch model's deletion.
 * Anything else that is not OK, and every failed check, is a failure.
 */
import { randomFillSync } from "node:crypto";
import type { WireVersionInfo } from "../support/bench-client.js";
import type { CallResult, SoakCalls } from "./soak-calls.js";
import { sha256Base64 } from "./soak-calls.js";
import type { KnownVersions } from "./soak-known.js";
import type { Ack, LatestFetch, SoakMix, SoakOp, SoakTask } from "./soak-protocol.js";
import { type SoakTally, codeName } from "./soak-tally.js";

const NOT_FOUND = 5;
const MODELS_PAGE = 5;
const VERSIONS_PAGE = 50;
const MAX_PAGES = 200;
const SCRATCH_MAX_BYTES = 256 * 1024;

/** What the clients of one process share. */
export interface TrafficState {
  readonly task: SoakTask;
  readonly tally: SoakTally;
  readonly known: KnownVersions;
  readonly acks: Ack[];
  readonly latestFetches: LatestFetch[];
  /** Random bytes that published versions are cut from (each also gets a random head). */
  readonly pool: Buffer;
  bytesPublished: number;
  bytesFetched: number;
}

export function pickOp(mix: SoakMix): SoakOp {
  const entries = Object.entries(mix) as [SoakOp, number][];
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = Math.random() * total;
  for (const [op, weight] of entries) {
    roll -= weight;
    if (roll < 0) {
      return op;
    }
  }
  return "fetchLatest";
}

function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(Math.random() * items.length)];
  if (item === undefined) {
    throw new Error("pick from an empty list");
  }
  return item;
}

/** Log-uniform between min and max: as many 1–4 KiB versions as 1–4 MiB ones. */
function randomSize(min: number, max: number): number {
  return Math.round(Math.exp(Math.log(min) + Math.random() * (Math.log(max) - Math.log(min))));
}

function makeData(state: TrafficState, size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  const offset = Math.floor(Math.random() * (state.pool.byteLength - size + 1));
  state.pool.copy(data, 0, offset, offset + size);
  randomFillSync(data, 0, Math.min(64, size));
  return data;
}

export class SoakClient {
  private scratchSequence = 0;

  constructor(
    private readonly state: TrafficState,
    private readonly calls: SoakCalls,
    private readonly clientId: number,
  ) {}

  run(op: SoakOp): Promise<void> {
    switch (op) {
      case "publishTransient":
        return this.publishShared(false);
      case "publishArchived":
        return this.publishShared(true);
      case "fetchLatest":
        return this.fetchLatest(pick(this.state.task.sharedModels));
      case "fetchRandom":
        return this.fetchRandom();
      case "listModels":
        return this.listModels();
      case "listVersions":
        return this.listVersions();
      case "scratch":
        return this.scratch();
    }
  }

  private get tally(): SoakTally {
    return this.state.tally;
  }

  private unexpected(method: string, result: { code: number; message: string }, context: string): void {
    this.tally.fail(`${method} ${codeName(result.code)}`, `${context}: ${result.message}`);
  }

  /** Publishes and checks the reply against what was sent; records the acknowledgement. */
  private async publish(modelId: string, archived: boolean, maxBytes: number): Promise<CallResult<WireVersionInfo> & { hash: string }> {
    const { task } = this.state;
    const size = randomSize(task.minBytes, Math.max(task.minBytes, maxBytes));
    const data = makeData(this.state, size);
    const hash = sha256Base64(data);
    const result = await this.calls.publish(modelId, data, archived, task.chunkBytes);
    if (result.ok) {
      this.state.bytesPublished += size;
      const info = result.value;
      const where = `CreateVersion of model "${modelId}" (archived ${archived}, ${size} bytes) → v${info.version_number}`;
      if (info.data_hash !== hash || info.data_size !== String(size) || info.archived !== archived || info.model_id !== modelId) {
        this.tally.fail("CreateVersion reply", `${where}: reply ${JSON.stringify({ ...info, user_data: undefined })}, sent hash ${hash}`);
      }
      if (!(info.version_number > 0)) {
        this.tally.fail("CreateVersion reply", `${where}: invalid version number`);
      }
      this.state.acks.push({ modelId, versionNumber: info.version_number, archived, hash, size });
    }
    return { ...result, hash };
  }

  private async publishShared(archived: boolean): Promise<void> {
    const modelId = pick(this.state.task.sharedModels);
    const result = await this.publish(modelId, archived, this.state.task.maxBytes);
    if (!result.ok) {
      this.unexpected("CreateVersion", result, `publish to shared model "${modelId}" (archived ${archived})`);
      return;
    }
    this.state.known.add(modelId, { versionNumber: result.value.version_number, archived, hash: result.hash });
  }

  /** Fetches one version by number and checks it against its info (data_hash, data_size). */
  private async fetchChecked(modelId: string, info: WireVersionInfo, allowNotFound: string | undefined): Promise<void> {
    const fetched = await this.calls.fetch(modelId, info.version_number);
    if (!fetched.ok) {
      if (fetched.code === NOT_FOUND && allowNotFound !== undefined) {
        this.tally.allowed(allowNotFound);
      } else {
        this.unexpected("RetrieveVersionData", fetched, `model "${modelId}" v${info.version_number} (archived ${info.archived})`);
      }
      return;
    }
    this.state.bytesFetched += fetched.value.bytes;
    if (fetched.value.hashBase64 !== info.data_hash || String(fetched.value.bytes) !== info.data_size) {
      this.tally.fail(
        "RetrieveVersionData data",
        `model "${modelId}" v${info.version_number}: got ${fetched.value.bytes} bytes with SHA-256 ${fetched.value.hashBase64}, ` +
          `info says ${info.data_size} bytes, ${info.data_hash}`,
      );
    }
  }

  private async fetchRandom(): Promise<void> {
    const modelId = pick(this.state.task.sharedModels);
    const known = this.state.known.pick(modelId);
    if (known === undefined) {
      return this.fetchLatest(modelId);
    }
    const infos = await this.calls.retrieveVersionInfos({ model_id: modelId, version_numbers: [known.versionNumber] });
    if (!infos.ok) {
      if (infos.code === NOT_FOUND && !known.archived) {
        this.tally.allowed("RetrieveVersionInfos NOT_FOUND: transient version evicted or expired");
      } else {
        this.unexpected("RetrieveVersionInfos", infos, `model "${modelId}" v${known.versionNumber} (archived ${known.archived})`);
      }
      return;
    }
    const info = infos.value.version_infos[0];
    if (info === undefined || info.version_number !== known.versionNumber || info.data_hash !== known.hash || info.archived !== known.archived) {
      this.tally.fail(
        "RetrieveVersionInfos reply",
        `model "${modelId}" v${known.versionNumber}: expected ${JSON.stringify(known)}, got ${JSON.stringify(info ?? null)}`,
      );
      return;
    }
    await this.fetchChecked(modelId, info, info.archived ? undefined : "RetrieveVersionData NOT_FOUND: transient version evicted or expired");
  }

  /**
   * Version -1: the info first, then the data. If the data's hash is not the info's, a newer
   * version became the latest in between; the orchestrator checks it against all acknowledgements.
   */
  private async fetchLatest(modelId: string): Promise<void> {
    const infos = await this.calls.retrieveVersionInfos({ model_id: modelId, version_numbers: [-1] });
    if (!infos.ok) {
      this.unexpected("RetrieveVersionInfos", infos, `model "${modelId}" version -1`);
      return;
    }
    const before = infos.value.version_infos[0];
    if (before === undefined) {
      this.tally.fail("RetrieveVersionInfos reply", `model "${modelId}" version -1: empty reply`);
      return;
    }
    const fetched = await this.calls.fetch(modelId, -1);
    if (!fetched.ok) {
      this.unexpected("RetrieveVersionData", fetched, `model "${modelId}" version -1 (latest was v${before.version_number})`);
      return;
    }
    this.state.bytesFetched += fetched.value.bytes;
    if (fetched.value.hashBase64 === before.data_hash && String(fetched.value.bytes) === before.data_size) {
      return;
    }
    this.tally.op("fetchLatestMovedOn");
    this.state.latestFetches.push({
      modelId,
      minVersion: before.version_number,
      hash: fetched.value.hashBase64,
      size: fetched.value.bytes,
    });
  }

  private async listModels(): Promise<void> {
    const ids: string[] = [];
    let handle = "";
    for (let page = 0; page < MAX_PAGES; page++) {
      const reply = await this.calls.retrieveModels({ models_count: MODELS_PAGE, model_handle: handle });
      if (!reply.ok) {
        this.unexpected("RetrieveModels", reply, `page with handle "${handle}"`);
        return;
      }
      if (reply.value.model_infos.length === 0) {
        break;
      }
      ids.push(...reply.value.model_infos.map((model) => model.model_id));
      handle = reply.value.next_model_handle;
    }
    // Shared models sort before every scratch model: deletions cannot shift them out of a page.
    const missing = this.state.task.sharedModels.filter((id) => !ids.includes(id));
    if (missing.length > 0) {
      this.tally.fail("RetrieveModels paging", `shared models missing from the listing: ${missing.join(", ")}`);
    }
    const scratch = ids.filter((id) => !this.state.task.sharedModels.includes(id));
    if (scratch.length === 0) {
      return;
    }
    // Another client's scratch model, which its owner may be deleting right now.
    const other = pick(scratch);
    const byId = await this.calls.retrieveModels({ model_ids: [pick(this.state.task.sharedModels), other] });
    if (!byId.ok) {
      if (byId.code === NOT_FOUND) {
        this.tally.allowed("RetrieveModels NOT_FOUND: scratch model deleted meanwhile");
      } else {
        this.unexpected("RetrieveModels", byId, `model_ids including scratch "${other}"`);
      }
    }
    const versions = await this.calls.retrieveVersionInfos({ model_id: other, versions_count: 10 });
    if (!versions.ok) {
      if (versions.code === NOT_FOUND) {
        this.tally.allowed("RetrieveVersionInfos NOT_FOUND: scratch model deleted meanwhile");
      } else {
        this.unexpected("RetrieveVersionInfos", versions, `scratch model "${other}"`);
      }
    }
  }

  private async listVersions(): Promise<void> {
    const modelId = pick(this.state.task.sharedModels);
    const start = Math.random() < 0.5 ? undefined : this.state.known.pick(modelId);
    let handle = start === undefined ? "" : String(start.versionNumber);
    let last = 0;
    for (let page = 0; page < MAX_PAGES; page++) {
      const reply = await this.calls.retrieveVersionInfos({ model_id: modelId, versions_count: VERSIONS_PAGE, version_handle: handle });
      if (!reply.ok) {
        this.unexpected("RetrieveVersionInfos", reply, `model "${modelId}" page with handle "${handle}"`);
        return;
      }
      const infos = reply.value.version_infos;
      if (infos.length === 0) {
        return;
      }
      for (const info of infos) {
        if (info.version_number <= last || info.model_id !== modelId) {
          this.tally.fail("RetrieveVersionInfos paging", `model "${modelId}": v${info.version_number} of "${info.model_id}" after v${last}`);
          return;
        }
        last = info.version_number;
        const known = this.state.known.get(modelId, info.version_number);
        if (known !== undefined && (known.hash !== info.data_hash || known.archived !== info.archived)) {
          this.tally.fail("RetrieveVersionInfos reply", `model "${modelId}" v${info.version_number}: listed ${info.data_hash}, known ${known.hash}`);
        }
        this.state.known.add(modelId, { versionNumber: info.version_number, archived: info.archived, hash: info.data_hash });
      }
      handle = reply.value.next_version_handle;
    }
  }

  /** A model of its own: created, given two versions, read back, then deleted while an upload races the deletion. */
  private async scratch(): Promise<void> {
    const modelId = `${this.state.task.scratchPrefix}-c${this.clientId}-${++this.scratchSequence}`;
    const created = await this.calls.createModel(modelId);
    if (!created.ok) {
      this.unexpected("CreateOrUpdateModel", created, `scratch model "${modelId}"`);
      return;
    }
    const archived = await this.publish(modelId, true, SCRATCH_MAX_BYTES);
    const transient = await this.publish(modelId, false, SCRATCH_MAX_BYTES);
    for (const [result, kind] of [
      [archived, "archived"],
      [transient, "transient"],
    ] as const) {
      if (!result.ok) {
        this.unexpected("CreateVersion", result, `${kind} version of scratch model "${modelId}"`);
      } else {
        // The model is this client's alone until it deletes it: both versions must be there.
        await this.fetchChecked(modelId, { ...result.value, data_hash: result.hash }, undefined);
      }
    }
    const listed = await this.calls.retrieveVersionInfos({ model_id: modelId });
    if (!listed.ok) {
      this.unexpected("RetrieveVersionInfos", listed, `scratch model "${modelId}"`);
    } else {
      const expected = [archived, transient].filter((r) => r.ok).length;
      if (listed.value.version_infos.length !== expected) {
        this.tally.fail("RetrieveVersionInfos reply", `scratch model "${modelId}": ${listed.value.version_infos.length} versions, expected ${expected}`);
      }
    }
    const delayMs = Math.random() * 100;
    const [racing, deleted] = await Promise.all([
      this.calls.publish(modelId, makeData(this.state, randomSize(1024, SCRATCH_MAX_BYTES)), Math.random() < 0.5, this.state.task.chunkBytes),
      new Promise<void>((resolve) => setTimeout(resolve, delayMs)).then(() => this.calls.deleteModel(modelId)),
    ]);
    if (!deleted.ok) {
      this.unexpected("DeleteModel", deleted, `scratch model "${modelId}"`);
      return;
    }
    if (!racing.ok) {
      if (racing.code === NOT_FOUND) {
        this.tally.allowed("CreateVersion NOT_FOUND: upload raced its model's deletion");
      } else {
        this.unexpected("CreateVersion", racing, `upload racing the deletion of scratch model "${modelId}"`);
      }
    }
    const after = await this.calls.retrieveVersionInfos({ model_id: modelId });
    if (after.ok) {
      this.tally.fail("DeleteModel", `scratch model "${modelId}" still answers RetrieveVersionInfos after its deletion`);
    } else if (after.code === NOT_FOUND) {
      this.tally.allowed("RetrieveVersionInfos NOT_FOUND: deleted scratch model (checked)");
    } else {
      this.unexpected("RetrieveVersionInfos", after, `deleted scratch model "${modelId}"`);
    }
  }
}
