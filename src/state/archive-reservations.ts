import type { Logger } from "../logger.js";
import type { NumberClaim } from "../redis/index.js";
import type { ArchiveNumbering } from "./archive-numbering.js";

/**
 * Before a claimed number is handed out: the archive's numbering records (version-numbering.ts) must
 * reach above it, so that a single-mode server started later on this archive never hands it out
 * again (a transient version leaves no file to continue after). Written a block ahead, as single
 * mode does: one archive write per VERSION_NUMBER_BLOCK numbers, the other claims learn from Redis
 * (the claim's `reserved`) that it is done. A failed write is a warning, as in single mode, once per
 * model until a write succeeds; the next claim tries again.
 */
export class ArchiveReservations {
  /** Models whose archive numbering record could not be written, warned once until a write succeeds. */
  private readonly warned = new Set<string>();

  constructor(
    private readonly numbering: ArchiveNumbering,
    private readonly log: Logger,
  ) {}

  /** Resolves to how far the records now reach (for Redis, at commit), undefined when nothing was written; never rejects. */
  async reserve(modelId: string, claim: NumberClaim): Promise<number | undefined> {
    if (claim.versionNumber < claim.reserved) {
      return undefined;
    }
    try {
      const upTo = await this.numbering.reserveAbove(modelId, claim.versionNumber);
      this.warned.delete(modelId);
      return upTo;
    } catch (error) {
      if (!this.warned.has(modelId)) {
        this.warned.add(modelId);
        this.log.warn(
          { err: error, modelId, versionNumber: claim.versionNumber },
          "could not write the archive's version-number record: versions are still numbered and served, but a server started later in single mode on this archive may hand out again numbers of transient versions created from now on",
        );
      }
      return undefined;
    }
  }
}
