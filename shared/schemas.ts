import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import activitySchema from '../schemas/activity.schema.json';
import deferredMessageSchema from '../schemas/deferred-message.schema.json';
import notificationSchema from '../schemas/notification.schema.json';

// The published JSON Schemas are the source of truth for what the HTTP body and a queue message
// may hold: the app validates with the very files client teams are given.

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

export type SchemaId = 'notification' | 'activity' | 'notification-message' | 'teams-message';

// Each queue-message kind is one definition of the published deferred-message schema: the app picks
// the branch by `channel` itself, so that an error names the fields of that kind, not of both.
const SCHEMA_REF: Record<SchemaId, string> = {
  notification: notificationSchema.$id,
  activity: activitySchema.$id,
  'notification-message': `${deferredMessageSchema.$id}#/definitions/notification`,
  'teams-message': `${deferredMessageSchema.$id}#/definitions/teams`,
};

// Compiled on first use, not at load: cold start pays only for what a request needs.
export function schemaValidator<T>(id: SchemaId): ValidateFunction<T> {
  const existing = compiled.get(id);
  if (existing) return existing as ValidateFunction<T>;
  if (!ajv) {
    // strictRequired off: the Teams message's oneOf names `userId`/`as` declared beside it.
    ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
    addFormats(ajv, ['date-time']);
    ajv.addSchema([notificationSchema, activitySchema, deferredMessageSchema]);
  }
  const fn = ajv.getSchema(SCHEMA_REF[id]);
  if (!fn) throw new Error(`no schema ${SCHEMA_REF[id]}`);
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
