// Just enough of ASN.1 DER (and the BER that PKCS#12 files may carry) to walk a PKCS#12 file:
// Node's crypto reads certificates and private keys, but not the container around them.

/** One ASN.1 element: its tag byte and its contents (for a constructed element, its children's bytes). */
export interface Element {
  readonly tag: number;
  readonly constructed: boolean;
  readonly content: Buffer;
  /** The whole encoding, tag and length included (what Node's crypto takes as DER). */
  readonly raw: Buffer;
}

export const TAG = {
  integer: 0x02,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  /** `[0]`, constructed (EXPLICIT, or IMPLICIT over a constructed type). */
  context0: 0xa0,
  /** `[0]` IMPLICIT OCTET STRING, primitive. */
  context0Primitive: 0x80,
} as const;

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** Reads the element at `offset`; returns it and the offset after it. */
function readElement(buf: Buffer, offset: number): { element: Element; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated element');
  const tag = buf[offset]!;
  let length = buf[offset + 1]!;
  let start = offset + 2;
  const constructed = (tag & 0x20) !== 0;
  if (length === 0x80) {
    // BER indefinite length (some exporters write it): children until the end-of-contents marker.
    if (!constructed) throw new DerError('indefinite length on a primitive element');
    let cursor = start;
    const parts: Buffer[] = [];
    while (!(buf[cursor] === 0 && buf[cursor + 1] === 0)) {
      const child = readElement(buf, cursor);
      parts.push(buf.subarray(cursor, child.next));
      cursor = child.next;
      if (cursor + 2 > buf.length) throw new DerError('unterminated indefinite length');
    }
    return {
      element: { tag, constructed, content: Buffer.concat(parts), raw: buf.subarray(offset, cursor + 2) },
      next: cursor + 2,
    };
  }
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes > 4 || start + bytes > buf.length) throw new DerError('unsupported length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buf[start + i]!;
    start += bytes;
  }
  const end = start + length;
  if (end > buf.length) throw new DerError('element runs past its container');
  return {
    element: { tag, constructed, content: buf.subarray(start, end), raw: buf.subarray(offset, end) },
    next: end,
  };
}

/** The one element `buf` holds. */
export function parse(buf: Buffer): Element {
  return readElement(buf, 0).element;
}

/** The children of a constructed element. */
export function children(element: Element): Element[] {
  if (!element.constructed) throw new DerError(`tag 0x${element.tag.toString(16)} is not constructed`);
  const out: Element[] = [];
  let offset = 0;
  while (offset < element.content.length) {
    const { element: child, next } = readElement(element.content, offset);
    out.push(child);
    offset = next;
  }
  return out;
}

/** The element's children, checking its tag. */
export function expect(element: Element | undefined, tag: number, what: string): Element {
  if (!element || element.tag !== tag) {
    throw new DerError(`expected ${what}${element ? `, got tag 0x${element.tag.toString(16)}` : ''}`);
  }
  return element;
}

/** An OCTET STRING's bytes; a BER constructed one is the concatenation of its parts. */
export function octets(element: Element): Buffer {
  if (!element.constructed) return element.content;
  return Buffer.concat(children(element).map(octets));
}

/** An OBJECT IDENTIFIER in dotted form. */
export function oid(element: Element): string {
  const bytes = expect(element, TAG.oid, 'an object identifier').content;
  const first = bytes[0] ?? 0;
  const parts = [Math.floor(first / 40), first % 40];
  let value = 0;
  for (const byte of bytes.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

/** A small non-negative INTEGER (iteration counts, versions). */
export function integer(element: Element): number {
  const bytes = expect(element, TAG.integer, 'an integer').content;
  if (bytes.length > 6) throw new DerError('integer too large');
  return bytes.reduce((n, b) => n * 256 + b, 0);
}
