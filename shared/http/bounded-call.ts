import { setTimeout as sleep } from 'node:timers/promises';
import type { CallBudget } from './dependency-budget';

/**
 * Runs `call` at most `budget.tries` times, each try given a signal that aborts after
 * `budget.perTryMs`, the whole call (back-offs included) after `budget.deadlineMs`. A try is
 * repeated when it ran out of time or `retryable` says so; anything else, or the last failure, is
 * thrown as it came. For SDKs that take an abort signal but have no client-side per-try timeout.
 */
export async function callWithTries<T>(
  budget: CallBudget,
  call: (signal: AbortSignal) => Promise<T>,
  retryable: (err: unknown) => boolean,
): Promise<T> {
  const deadline = AbortSignal.timeout(budget.deadlineMs);
  for (let attempt = 1; ; attempt++) {
    const perTry = AbortSignal.timeout(budget.perTryMs);
    try {
      return await call(AbortSignal.any([deadline, perTry]));
    } catch (err) {
      const again = perTry.aborted || retryable(err);
      if (deadline.aborted || attempt >= budget.tries || !again) throw err;
    }
    // Half to all of the delay, so that callers who failed together do not retry together.
    const delayMs = budget.retryDelayMs * (0.5 + Math.random() / 2);
    await sleep(delayMs, undefined, { signal: deadline });
  }
}
