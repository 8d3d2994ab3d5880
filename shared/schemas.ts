import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import deferredMessageSchema from '../schemas/deferred-message.schema.json';
import notificationSchema from '../schemas/notification.schema.json';

// The published JSON Schemas are the source of truth for what the HTTP body and a queue message
// may hold: the app validates with the very files client teams are given.

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

// Compiled on first use, not at load: cold start pays only for what a request needs.
export function schemaValidator<T>(id: 'notification' | 'deferred-message'): ValidateFunction<T> {
  const existing = compiled.get(id);
  if (existing) return existing as ValidateFunction<T>;
  if (!ajv) {
    ajv = new Ajv({ allErrors: true, strict: true });
    addFormats(ajv, ['date-time']);
    ajv.addSchema(notificationSchema);
  }
  const fn =
    id === 'notification' ? ajv.getSchema(notificationSchema.$id)! : ajv.compile(deferredMessageSchema);
  compiled.set(id, fn);
  return fn as ValidateFunction<T>;
}

/** Ajv's errors as one line a sender can act on. */
export function describeSchemaErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 10)
    .map((e) => {
      const where = e.instancePath || '(body)';
      if (e.keyword === 'additionalProperties') {
        return `${where}: unknown property "${String(e.params.additionalProperty)}"`;
      }
      return `${where} ${e.message ?? 'is invalid'}`;
    })
    .join('; ');
}
