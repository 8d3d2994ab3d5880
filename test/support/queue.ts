import { QueueClient } from '@azure/storage-queue';
import { eventually } from './stack';

/** The deferred queue and its poison queue of a test stack, as an enqueuing system and an operator see them. */
export class TestQueues {
  readonly queue: QueueClient;
  readonly poison: QueueClient;

  constructor(connectionString: string, name = 'notifications-deferred') {
    this.queue = new QueueClient(connectionString, name);
    this.poison = new QueueClient(connectionString, `${name}-poison`);
  }

  /** Puts raw text on the queue exactly as given (for malformed messages). */
  async sendRaw(text: string): Promise<string> {
    return (await this.queue.sendMessage(text)).messageId;
  }

  /** Resolves once the main queue is empty (invisible messages included), within `timeoutMs`. */
  async drained(timeoutMs = 30_000): Promise<void> {
    await eventually(async () => ((await this.pending()) === 0 ? true : undefined), {
      what: 'the queue to drain',
      timeoutMs,
    });
  }

  /** Messages in the main queue, invisible ones included. */
  async pending(): Promise<number> {
    return (await this.queue.getProperties()).approximateMessagesCount ?? 0;
  }

  /** Everything in the poison queue, decoded (peek: they stay there). */
  async poisoned(): Promise<Record<string, unknown>[]> {
    const { peekedMessageItems } = await this.poison.peekMessages({ numberOfMessages: 32 });
    return peekedMessageItems.map((m) => {
      const text = Buffer.from(m.messageText, 'base64').toString('utf8');
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return { raw: m.messageText };
      }
    });
  }

  async clearPoison(): Promise<void> {
    await this.poison.clearMessages();
  }
}
