/**
 * What changed, announced after the change commits, so whatever caches verification answers can drop
 * them. On one node the verification cache listens; in cluster mode a bus will carry these to the others.
 */
export type Change =
  | { kind: "key"; keyId: string }
  | { kind: "key_created"; keyHash: string }
  | { kind: "credential"; credentialId: string };

export class Changes {
  private readonly listeners: ((change: Change) => void)[] = [];

  on(listener: (change: Change) => void): void {
    this.listeners.push(listener);
  }

  emit(change: Change): void {
    for (const listener of this.listeners) listener(change);
  }
}
