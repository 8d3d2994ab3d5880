import { GraphError } from './graph-http';

// Reading a body the way an OData service does: the declared properties of each type and nothing
// else, primitive types checked. Each endpoint then applies its own service's rules.

export type Shape =
  | { kind: 'string' }
  | { kind: 'int32' }
  | { kind: 'int64' }
  | { kind: 'dateTimeOffset' }
  | { kind: 'enum'; type: string; members: readonly string[] }
  | { kind: 'collection'; of: Shape }
  | { kind: 'complex'; type: string; props: Readonly<Record<string, Shape>> };

export const STRING: Shape = { kind: 'string' };

export function odataError(message: string): GraphError {
  return new GraphError(400, 'RequestBodyRead', message);
}

function nodeKind(value: unknown): string {
  if (Array.isArray(value)) return 'StartArray';
  if (value !== null && typeof value === 'object') return 'StartObject';
  return 'PrimitiveValue';
}

function edmName(shape: Shape): string {
  switch (shape.kind) {
    case 'string':
      return 'Edm.String';
    case 'int32':
      return 'Edm.Int32';
    case 'int64':
      return 'Edm.Int64';
    case 'dateTimeOffset':
      return 'Edm.DateTimeOffset';
    case 'enum':
    case 'complex':
      return shape.type;
    case 'collection':
      return `Collection(${edmName(shape.of)})`;
  }
}

const DATE_TIME_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/i;

/** Returns the value with its JSON shape checked (enums canonicalised); null stays null. */
export function readValue(value: unknown, shape: Shape, name: string): unknown {
  if (value === null) return null;
  const expected =
    shape.kind === 'complex' ? 'StartObject' : shape.kind === 'collection' ? 'StartArray' : 'PrimitiveValue';
  const found = nodeKind(value);
  if (found !== expected) {
    throw odataError(
      `An unexpected '${found}' node was found for property named '${name}' when reading from the JSON reader. ` +
        `A '${expected}' node was expected.`,
    );
  }
  const cannotConvert = (): GraphError =>
    odataError(
      `Cannot convert the literal '${typeof value === 'string' ? value : JSON.stringify(value)}' to the expected type '${edmName(shape)}'.`,
    );
  switch (shape.kind) {
    case 'string':
      if (typeof value !== 'string') throw cannotConvert();
      return value;
    case 'int32': {
      // Graph's own example posts `"displayTimeToLive": "60"` and is answered with a number.
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -2147483648 || n > 2147483647)
        throw cannotConvert();
      return n;
    }
    case 'int64': {
      // Int64 travels as a JSON number (IEEE754Compatible=false) or as a string of digits; beyond
      // 2^53 a JavaScript number is no longer exact, so such values are refused here.
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw cannotConvert();
      return n;
    }
    case 'dateTimeOffset':
      if (typeof value !== 'string' || !DATE_TIME_OFFSET.test(value) || Number.isNaN(Date.parse(value))) {
        throw cannotConvert();
      }
      return value;
    case 'enum': {
      // Enum members compared case-insensitively and answered in their declared casing.
      const member =
        typeof value === 'string'
          ? shape.members.find((m) => m.toLowerCase() === value.toLowerCase())
          : undefined;
      if (!member) throw cannotConvert();
      return member;
    }
    case 'collection':
      return (value as unknown[]).map((item) => readValue(item, shape.of, name));
    case 'complex':
      return readComplex(value as Record<string, unknown>, shape);
  }
}

export function readComplex(
  obj: Record<string, unknown>,
  shape: Extract<Shape, { kind: 'complex' }>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (key === '@odata.type') {
      const name = typeof value === 'string' ? value.replace(/^#/, '') : String(value);
      if (name.toLowerCase() !== shape.type.toLowerCase()) {
        throw odataError(
          `A type named '${name}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type.`,
        );
      }
      continue;
    }
    const propShape = Object.prototype.hasOwnProperty.call(shape.props, key) ? shape.props[key] : undefined;
    if (!propShape) {
      throw odataError(
        `The property '${key}' does not exist on type '${shape.type}'. ` +
          'Make sure to only use property names that are defined by the type or mark the type as open type.',
      );
    }
    out[key] = readValue(value, propShape, key);
  }
  return out;
}
