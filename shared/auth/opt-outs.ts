import { userKey, type UserRef } from '../ids';

/** Where an operation on a user's stored grant started: compare it later with `OptOuts.since`. */
export type Generation = number;

/**
 * Makes an opt-out final on this instance. Each opt-out moves the user to a new generation;
 * anything that began before it (an OBO exchange, a redemption, a refresh-token write) compares the
 * generation it started in with the current one before it caches a token or writes to the vault,
 * and stands down when they differ. Writes already running when the opt-out arrives are tracked,
 * and the opt-out waits for them, so its delete is the last word in the vault.
 *
 * Ordering by generation, not by time: no interleaving of awaits can let an older operation land
 * after a newer opt-out. Across instances the vault's own state is the check (see the store's
 * `replace` and `deleteIfCurrent`).
 */
export class OptOuts {
  private readonly generations = new Map<string, Generation>();
  private readonly writes = new Map<string, Set<Promise<unknown>>>();
  private counter = 0;

  /**
   * @param maxUsers Opt-outs remembered; the oldest is forgotten first. Forgetting one only
   * matters to an operation still running from before it, which is seconds, not 10,000 opt-outs.
   */
  constructor(private readonly maxUsers = 10_000) {}

  /** The user's current generation: take it when an operation starts. */
  since(user: UserRef): Generation {
    return this.generations.get(userKey(user)) ?? 0;
  }

  /** Whether the user opted out after `generation` was taken. */
  optedOutSince(user: UserRef, generation: Generation): boolean {
    return this.since(user) !== generation;
  }

  /**
   * Runs a write of the user's stored grant unless the user opted out since `generation`, and
   * keeps it tracked while it runs. Resolves to `false` (nothing written) after an opt-out.
   */
  async write(user: UserRef, generation: Generation, run: () => Promise<void>): Promise<boolean> {
    if (this.optedOutSince(user, generation)) return false;
    const k = userKey(user);
    const running = run();
    let set = this.writes.get(k);
    if (!set) this.writes.set(k, (set = new Set()));
    set.add(running);
    try {
      await running;
      return true;
    } finally {
      set.delete(running);
      if (set.size === 0 && this.writes.get(k) === set) this.writes.delete(k);
    }
  }

  /**
   * Records the opt-out (synchronously: every later check sees it) and resolves once the writes
   * that were already running have settled, whatever their outcome. Then the caller deletes.
   */
  async optOut(user: UserRef): Promise<void> {
    const k = userKey(user);
    this.generations.delete(k);
    this.generations.set(k, ++this.counter);
    if (this.generations.size > this.maxUsers) this.generations.delete(this.generations.keys().next().value!);
    await Promise.allSettled([...(this.writes.get(k) ?? [])]);
  }
}
