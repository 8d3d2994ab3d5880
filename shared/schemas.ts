import type { ErrorObject, ValidateFunction } from 'ajv';
import * as validators from '#schema-validators';

// The published JSON Schemas are the source of truth for what the HTTP body and a queue message
// may hold: the app validates with the very files client teams are given, compiled at build time
// (`npm run build`, Ajv standalone code), so neither loading the app nor a first request pays for
// Ajv's compiler.

export type SchemaId = 'notification' | 'activity' | 'notification-message' | 'teams-message';

// Each queue-message kind is one definition of the published deferred-message schema: the app picks
// the branch by `channel` itself, so that an error names the fields of that kind, not of both.
const VALIDATORS: Record<SchemaId, ValidateFunction> = {
  notification: validators.notification,
  activity: validators.activity,
  'notification-message': validators.notificationMessage,
  'teams-message': validators.teamsMessage,
};

/** The build-time validator of a schema. */
export function schemaValidator<T>(id: SchemaId): ValidateFunction<T> {
  return VALIDATORS[id] as ValidateFunction<T>;
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
