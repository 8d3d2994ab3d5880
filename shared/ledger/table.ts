import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { appServiceManagedIdentity } from '../auth/managed-identity';
import type { StorageConnection } from '../config';
import { AppError } from '../errors';
import { callWithTries } from '../http/bounded-call';
import { DEPENDENCY_BUDGET, type CallBudget } from '../http/dependency-budget';
import { onFirstUse } from '../on-first-use';

/** A ledger row as stored: string and number properties only (times as ISO 8601 UTC strings). */
export type Row = Record<string, string | number | undefined>;
export type StoredRow = TableEntityResult<Row> & { partitionKey: string; rowKey: string; etag: string };

/** What a conditional or keyed operation found instead of doing its work. */
export type Miss = 'not_found' | 'exists' | 'changed';

/** A row as written: its new ETag, for the next conditional write. */
export interface Written {
  etag: string;
}

export function isMiss(value: unknown): value is Miss {
  return value === 'not_found' || value === 'exists' || value === 'changed';
}

/**
 * The ledger's table, through @azure/data-tables: each call held to the storage budget (per-try
 * timeout, tries, deadline — the SDK's own retries are off, as for the queue, since it has no
 * client-side per-try timeout), the table created on first use, and the three answers the ledger
 * branches on (404, 409, 412) returned as values rather than thrown. Anything else is
 * `upstream_unavailable`.
 */
export class LedgerTable {
  private ready: Promise<void> | undefined;

  constructor(
    private readonly client: () => TableClient,
    private readonly budget: CallBudget = DEPENDENCY_BUDGET.storage,
  ) {}

  get(partitionKey: string, rowKey: string): Promise<StoredRow | 'not_found'> {
    return this.call('read', async (c, abortSignal) => {
      const row = await c.getEntity<Row>(partitionKey, rowKey, { abortSignal });
      return row as StoredRow;
    }) as Promise<StoredRow | 'not_found'>;
  }

  /** Inserts; `exists` when a row has the key. */
  insert(row: Row & { partitionKey: string; rowKey: string }): Promise<Written | Miss> {
    return this.call('write', async (c, abortSignal) => ({
      etag: (await c.createEntity(row, { abortSignal })).etag ?? '*',
    }));
  }

  /**
   * Merges (or, `replace`, replaces) the row's properties: only while it is still at `etag`
   * (`changed` otherwise), or whatever it holds with `etag` `*`. `not_found` when there is none.
   */
  update(
    row: Row & { partitionKey: string; rowKey: string },
    etag: string,
    mode: 'Merge' | 'Replace' = 'Merge',
  ): Promise<Written | Miss> {
    return this.call('write', async (c, abortSignal) => ({
      etag: (await c.updateEntity(row, mode, { etag, abortSignal })).etag ?? '*',
    }));
  }

  /** Merges into the row, creating it when there is none. */
  async upsert(row: Row & { partitionKey: string; rowKey: string }): Promise<void> {
    await this.call('write', (c, abortSignal) => c.upsertEntity(row, 'Merge', { abortSignal }));
  }

  delete(partitionKey: string, rowKey: string, etag = '*'): Promise<void | Miss> {
    return this.call('write', async (c, abortSignal) => {
      await c.deleteEntity(partitionKey, rowKey, { etag, abortSignal });
    });
  }

  /** Every row the OData filter selects (only the named properties: name the keys), page by page. */
  async *select(filter: string, properties: string[]): AsyncGenerator<StoredRow[]> {
    await this.call('read', () => Promise.resolve());
    const pages = this.client()
      .listEntities<Row>({ queryOptions: { filter, select: properties } })
      .byPage({ maxPageSize: 1000 });
    for (;;) {
      const page = await this.call('read', () => pages.next());
      if (isMiss(page) || page.done) return;
      yield page.value as StoredRow[];
    }
  }

  /** Deletes rows of one partition in batches of 100 (one transaction each; the table's limit). */
  async deleteAll(rows: readonly StoredRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 100) {
      const batch = rows.slice(i, i + 100);
      await this.call('write', (c) =>
        c.submitTransaction(
          batch.map((row) => ['delete', { partitionKey: row.partitionKey, rowKey: row.rowKey }]),
        ),
      );
    }
  }

  private async call<T>(
    what: 'read' | 'write',
    work: (client: TableClient, abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T | Miss> {
    const client = this.client();
    try {
      return await callWithTries(
        this.budget,
        async (abortSignal) => {
          await this.ensure(client, abortSignal);
          return work(client, abortSignal);
        },
        isTransient,
      );
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) return 'not_found';
      if (status === 409) return 'exists';
      if (status === 412) return 'changed';
      throw new AppError('upstream_unavailable', {
        detail: `The delivery ledger (table ${client.tableName}) could not be ${what === 'read' ? 'read' : 'written'} within ${this.budget.deadlineMs} ms.`,
        retryAfterSeconds: 5,
        cause: err,
      });
    }
  }

  /**
   * Health: the table service answers an authenticated read (one try, the caller's timeout). "No
   * such entity" or "no such table" is an answer too (the table is created on first use).
   */
  async probe(abortSignal: AbortSignal): Promise<void> {
    try {
      await this.client().getEntity('health', 'probe', { abortSignal });
    } catch (err) {
      if ((err as { statusCode?: unknown }).statusCode !== 404) throw err;
    }
  }

  /** Creates the table on first use (the SDK treats an existing one as success). */
  private ensure(client: TableClient, abortSignal: AbortSignal): Promise<void> {
    this.ready ??= client.createTable({ abortSignal }).then(
      () => undefined,
      (err: unknown) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }
}

/** What the SDK's own retry policy would retry: a failed connection, 500 and 503. */
function isTransient(err: unknown): boolean {
  if (!(err instanceof Error) || err.name !== 'RestError') return false;
  const status = (err as Error & { statusCode?: number }).statusCode;
  return status === undefined || status === 500 || status === 503;
}

/**
 * The ledger's table in the `AzureWebJobsStorage` account: from its connection string, or with the
 * Function App's managed identity at the table endpoint (identity-based form). Checked now; the
 * client is created, and @azure/data-tables loaded, at the first ledger call.
 */
export function ledgerTableFrom(
  storage: StorageConnection,
  env: Readonly<Record<string, string | undefined>>,
  tableName: string,
): LedgerTable {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, on purpose
  const sdk = () => require('@azure/data-tables') as typeof import('@azure/data-tables');
  const options = { retryOptions: { maxRetries: 0 } };
  if (storage.kind === 'connectionString') {
    const connection = storage.connectionString;
    return new LedgerTable(
      onFirstUse(() =>
        sdk().TableClient.fromConnectionString(connection, tableName, {
          ...options,
          // Azurite (and any explicit http:// endpoint) is plain HTTP; the SDK refuses it otherwise.
          allowInsecureConnection: /TableEndpoint=http:|UseDevelopmentStorage=true/i.test(connection),
        }),
      ),
    );
  }
  const credential = appServiceManagedIdentity(
    env,
    storage.clientId,
    'AzureWebJobsStorage__tableServiceUri / __accountName (an identity-based connection)',
  );
  return new LedgerTable(
    onFirstUse(() => new (sdk().TableClient)(storage.tableServiceUri, tableName, credential, options)),
  );
}
