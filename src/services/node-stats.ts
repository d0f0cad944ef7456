/**
 * What this node counts about itself for /metrics: plain numbers that the layers below HTTP bump as
 * things happen, and the metrics endpoint reads when it is scraped (so no metrics library reaches below
 * the HTTP layer, and a node nobody scrapes pays an increment). Nothing here names a key, a company or
 * an address: only how many.
 */
export class NodeStats {
  /** Verifications answered from the cache (a negative "no such key" entry counts) or not. */
  cacheHits = 0;
  cacheMisses = 0;
  /** Rate-limit decisions on keys and API users (verifications and management calls alike). */
  rateLimitAllowed = 0;
  rateLimitRefused = 0;
  /** Errors Redis gave this node: refused connections, timeouts, failed publishes and commands. */
  redisErrors = 0;
  private readonly lagWatchers = new Set<(ms: number) => void>();

  redisError(): void {
    this.redisErrors++;
  }

  /** A change another node published reached this one `ms` after it was sent (per the two clocks). */
  busLag(ms: number): void {
    for (const watch of this.lagWatchers) watch(ms);
  }

  /** Calls `watch` with each bus lag from now on; the returned function stops it. */
  watchBusLag(watch: (ms: number) => void): () => void {
    this.lagWatchers.add(watch);
    return () => this.lagWatchers.delete(watch);
  }
}
