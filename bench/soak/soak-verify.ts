/**
 * The soak test's final checks, over what every traffic process reported:
 * - every acknowledged archived version of a model never deleted is still
 *   there, with the data that was sent (info and data, SHA-256);
 * - version numbers of the shared models were handed out once each, without gaps;
 * - every fetch of version -1 that did not match the info read just before it
 *   returned the data of some acknowledged version at least as new.
 */
import { createBenchClient } from "../support/bench-client.js";
import { SoakCalls } from "./soak-calls.js";
import type { Ack, LatestFetch } from "./soak-protocol.js";
import { SoakTally } from "./soak-tally.js";

const CLIENTS = 4;
const DEADLINE_MS = 60_000;

export interface ArchivedCheck {
  readonly versions: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly tally: SoakTally;
}

/** Reads back each archived version: its info must carry the acknowledged hash and size, its data must hash to it. */
export async function verifyArchived(address: string, acks: readonly Ack[]): Promise<ArchivedCheck> {
  const startedAt = Date.now();
  const tally = new SoakTally();
  let next = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    const client = createBenchClient(address);
    const calls = new SoakCalls(client, tally, DEADLINE_MS);
    try {
      for (let ack = acks[next++]; ack !== undefined; ack = acks[next++]) {
        const where = `archived model "${ack.modelId}" v${ack.versionNumber}`;
        const infos = await calls.retrieveVersionInfos({ model_id: ack.modelId, version_numbers: [ack.versionNumber] });
        if (!infos.ok) {
          tally.fail(`final RetrieveVersionInfos ${infos.code}`, `${where}: ${infos.message}`);
          continue;
        }
        const info = infos.value.version_infos[0];
        if (info === undefined || info.data_hash !== ack.hash || info.data_size !== String(ack.size) || !info.archived) {
          tally.fail("final info", `${where}: acknowledged ${ack.hash} (${ack.size} bytes), info ${JSON.stringify(info ?? null)}`);
        }
        const fetched = await calls.fetch(ack.modelId, ack.versionNumber);
        if (!fetched.ok) {
          tally.fail(`final RetrieveVersionData ${fetched.code}`, `${where}: ${fetched.message}`);
          continue;
        }
        bytes += fetched.value.bytes;
        if (fetched.value.hashBase64 !== ack.hash || fetched.value.bytes !== ack.size) {
          tally.fail("final data", `${where}: got ${fetched.value.bytes} bytes ${fetched.value.hashBase64}, acknowledged ${ack.size} bytes ${ack.hash}`);
        }
      }
    } finally {
      client.close();
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, () => worker()));
  return { versions: acks.length, bytes, seconds: (Date.now() - startedAt) / 1000, tally };
}

export interface NumberingCheck {
  readonly models: number;
  readonly versions: number;
  readonly duplicates: number;
  readonly gaps: number;
  readonly details: readonly string[];
}

/** Each shared model's acknowledged numbers must be exactly 1..max: unique, and no gap (a failed upload takes no number). */
export function checkNumbering(acks: readonly Ack[], models: readonly string[]): NumberingCheck {
  let duplicates = 0;
  let gaps = 0;
  let versions = 0;
  const details: string[] = [];
  for (const modelId of models) {
    const numbers = acks.filter((ack) => ack.modelId === modelId).map((ack) => ack.versionNumber);
    numbers.sort((a, b) => a - b);
    versions += numbers.length;
    let previous = 0;
    for (const n of numbers) {
      if (n === previous) {
        duplicates++;
        if (details.length < 20) {
          details.push(`model "${modelId}": v${n} acknowledged twice`);
        }
      } else if (n !== previous + 1) {
        gaps += n - previous - 1;
        if (details.length < 20) {
          details.push(`model "${modelId}": no acknowledged version between v${previous} and v${n}`);
        }
      }
      previous = n;
    }
  }
  return { models: models.length, versions, duplicates, gaps, details };
}

export interface LatestCheck {
  readonly checked: number;
  readonly unmatched: number;
  readonly details: readonly string[];
}

export function checkLatestFetches(fetches: readonly LatestFetch[], acks: readonly Ack[]): LatestCheck {
  const byHash = new Map<string, Ack[]>();
  for (const ack of acks) {
    const list = byHash.get(ack.hash);
    if (list === undefined) {
      byHash.set(ack.hash, [ack]);
    } else {
      list.push(ack);
    }
  }
  let unmatched = 0;
  const details: string[] = [];
  for (const fetch of fetches) {
    const match = byHash
      .get(fetch.hash)
      ?.some((ack) => ack.modelId === fetch.modelId && ack.versionNumber >= fetch.minVersion && ack.size === fetch.size);
    if (match !== true) {
      unmatched++;
      if (details.length < 20) {
        details.push(`model "${fetch.modelId}" version -1 returned ${fetch.size} bytes ${fetch.hash}: no acknowledged version ≥ v${fetch.minVersion} has them`);
      }
    }
  }
  return { checked: fetches.length, unmatched, details };
}
