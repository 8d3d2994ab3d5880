// Per-try timeouts and a per-call deadline for Azure SDK clients built on @azure/core-rest-pipeline
// (SecretClient, the @azure/identity credentials). The SDK sets neither by itself.
import {
  createDefaultHttpClient,
  RestError,
  type HttpClient,
  type PipelinePolicy,
  type PipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import type { CallBudget } from './dependency-budget';

/**
 * An HTTP client that gives each try at most `perTryMs`. A try that runs out fails as a network
 * error (`ETIMEDOUT`), which the SDK's retry policy retries like a dropped connection: the SDK's
 * own `request.timeout` fails with an AbortError instead, which it never retries.
 */
export function perTryTimeoutClient(
  perTryMs: number,
  inner: HttpClient = createDefaultHttpClient(),
): HttpClient {
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      if (!(request.timeout > 0) || request.timeout > perTryMs) request.timeout = perTryMs;
      try {
        return await inner.sendRequest(request);
      } catch (err) {
        const ownTimeout = err instanceof Error && err.name === 'AbortError' && !request.abortSignal?.aborted;
        if (!ownTimeout) throw err;
        // No `request` on the error: a Key Vault write's body is the user's refresh token.
        throw new RestError(`No answer within ${request.timeout} ms.`, { code: 'ETIMEDOUT' });
      }
    },
  };
}

/**
 * A policy that ends the whole call, every try and back-off (a server's `Retry-After` included,
 * which the SDK otherwise waits out however long), after `deadlineMs`: an AbortError then.
 */
export function deadlinePolicy(deadlineMs: number): PipelinePolicy {
  return {
    name: 'graphNotifyDeadline',
    sendRequest(request, next) {
      const deadline = AbortSignal.timeout(deadlineMs);
      const given = request.abortSignal as AbortSignal | undefined;
      request.abortSignal = given ? AbortSignal.any([given, deadline]) : deadline;
      return next(request);
    },
  };
}

/** Client options (core-client's `CommonClientOptions`) that hold a call to `budget`. */
export function boundedClientOptions(budget: CallBudget, { deadline = true } = {}) {
  return {
    httpClient: perTryTimeoutClient(budget.perTryMs),
    retryOptions: {
      maxRetries: budget.tries - 1,
      retryDelayInMs: budget.retryDelayMs,
      maxRetryDelayInMs: budget.retryDelayMs,
    },
    additionalPolicies: deadline
      ? [{ policy: deadlinePolicy(budget.deadlineMs), position: 'perCall' as const }]
      : [],
  };
}
