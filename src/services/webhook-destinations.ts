import { type LookupAddress, lookup } from "node:dns";
import { LatchkeyError } from "../core/errors.ts";
import type { IpMatcher } from "../core/ip.ts";
import { compileDestinationRule, literalAddress } from "../core/webhooks.ts";

/** The callback `net.connect` takes its addresses from (the `lookup` option undici hands through). */
type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A refused destination, as the deliverer records it on the attempt. */
export class DestinationRefused extends Error {
  override name = "DestinationRefused";
}

/**
 * Where webhooks may be sent (SSRF): a URL's host is resolved and every address it resolves to is
 * checked against the destination rule, once when an endpoint is saved and again on every attempt.
 * The deliverer connects through `lookup`, so the address it connects to is the address that was
 * checked, with no second resolution a rebinding DNS server could answer differently.
 */
export class WebhookDestinations {
  private readonly allowed: IpMatcher;

  constructor(allowedNetworks: readonly string[] = []) {
    this.allowed = compileDestinationRule(allowedNetworks);
  }

  /** Whether a delivery may connect to `ip`. */
  allows(ip: string): boolean {
    return this.allowed(ip);
  }

  private refusal(address: string): DestinationRefused {
    return new DestinationRefused(
      `${address} is a loopback, private, link-local or other special address (see LATCHKEY_WEBHOOK_ALLOWED_NETWORKS)`,
    );
  }

  /** For net.connect: resolves, keeps the allowed addresses, and fails when none is left. */
  readonly lookup = (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    lookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const refused = addresses.find((a) => !this.allowed(a.address));
      // One refused address refuses the host: a name that mixes public and private addresses is a
      // rebinding attempt, or a misconfiguration worth hearing about.
      if (refused) return callback(Object.assign(this.refusal(refused.address), { code: "EREFUSED" }), []);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), []);
      if (options.all) return callback(null, addresses);
      callback(null, first.address, first.family);
    });
  };

  /** Before connecting: an IP literal is never looked up, so it is checked here. */
  checkLiteral(url: URL): void {
    const literal = literalAddress(url);
    if (literal !== null && !this.allowed(literal)) throw this.refusal(literal);
  }

  /**
   * When an endpoint is saved: refuses a URL whose host is, or resolves to, a refused address. A name
   * that does not resolve (yet) is accepted; its deliveries fail and are retried until it does.
   */
  async check(url: URL, timeoutMs = 2000): Promise<void> {
    const refuse = (why: string) =>
      new LatchkeyError("WEBHOOK_URL_REFUSED", undefined, { field: "url", reason: why });
    try {
      this.checkLiteral(url);
    } catch (err) {
      throw refuse((err as Error).message);
    }
    if (literalAddress(url) !== null) return;
    const addresses = await new Promise<LookupAddress[]>((resolve) => {
      const timer = setTimeout(() => resolve([]), timeoutMs);
      lookup(url.hostname, { all: true }, (err, found) => {
        clearTimeout(timer);
        resolve(err ? [] : found);
      });
    });
    const refused = addresses.find((a) => !this.allowed(a.address));
    if (refused) throw refuse(this.refusal(refused.address).message);
  }
}
