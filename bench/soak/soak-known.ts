/**
 * Versions of the shared models that one soak process has seen (its own
 * acknowledgements and the listings of its clients), so that clients can fetch
 * random existing numbers. Bounded: past the cap, a random entry is replaced.
 */

export interface KnownVersion {
  readonly versionNumber: number;
  readonly archived: boolean;
  readonly hash: string;
}

const MAX_PER_MODEL = 4096;

export class KnownVersions {
  private readonly byModel = new Map<string, KnownVersion[]>();
  private readonly indexOf = new Map<string, Map<number, number>>();

  add(modelId: string, version: KnownVersion): void {
    let list = this.byModel.get(modelId);
    let index = this.indexOf.get(modelId);
    if (list === undefined || index === undefined) {
      list = [];
      index = new Map();
      this.byModel.set(modelId, list);
      this.indexOf.set(modelId, index);
    }
    const at = index.get(version.versionNumber);
    if (at !== undefined) {
      list[at] = version;
      return;
    }
    if (list.length < MAX_PER_MODEL) {
      index.set(version.versionNumber, list.length);
      list.push(version);
      return;
    }
    const slot = Math.floor(Math.random() * list.length);
    const replaced = list[slot];
    if (replaced !== undefined) {
      index.delete(replaced.versionNumber);
    }
    list[slot] = version;
    index.set(version.versionNumber, slot);
  }

  /** The version with this number, if seen. */
  get(modelId: string, versionNumber: number): KnownVersion | undefined {
    const at = this.indexOf.get(modelId)?.get(versionNumber);
    return at === undefined ? undefined : this.byModel.get(modelId)?.[at];
  }

  /** A random version seen of the model, if any. */
  pick(modelId: string): KnownVersion | undefined {
    const list = this.byModel.get(modelId);
    return list === undefined || list.length === 0 ? undefined : list[Math.floor(Math.random() * list.length)];
  }
}
