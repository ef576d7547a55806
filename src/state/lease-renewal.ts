/** A lease is renewed this often while its holder works: a share of the lease. */
export const LEASE_RENEW_SHARE = 0.3;

/** A running renewal of one lease (see renewLeaseWhileHeld). */
export interface LeaseRenewal {
  /** No more renewals from now on (a renewal already sent still completes). Idempotent. */
  stop(): void;
}

/**
 * Renews a lease in Redis (a commit's claim of a number, a deletion's hold on its model, the archive
 * import's lease) every LEASE_RENEW_SHARE of `leaseMs` until stopped. A renewal that fails or finds
 * the lease gone is ignored here: the holder learns it when it next checks the lease itself (at
 * commit, at the fence, before each imported model). The timer does not keep the process alive.
 */
export function renewLeaseWhileHeld(leaseMs: number, renew: () => Promise<unknown>): LeaseRenewal {
  const timer = setInterval(() => {
    renew().catch(() => undefined);
  }, leaseMs * LEASE_RENEW_SHARE);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
