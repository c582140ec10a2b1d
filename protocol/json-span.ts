// Where a top-level member's value lies in JSON text, as a byte span, found without parsing (so
// that a broker can pass a value on as it arrived instead of re-encoding what it parsed). Pure and
// allocation-free: one forward pass over UTF-8 bytes, the answer written into a caller's Span.
//
// Meant for text that JSON.parse has already accepted; on anything else it answers "not found"
// rather than guess. Exact where it answers: strings honour escapes, nested arrays and objects are
// skipped whole, whitespace is JSON's four, and a key present twice gives its last value (as
// JSON.parse keeps the last). A top-level key written with escapes makes it give up (not found),
// since it would have to decode the key to compare it. Multi-byte UTF-8 characters need no care:
// all their bytes are >= 0x80, so they never look like JSON's punctuation.

export interface Span {
  /** Index of the value's first byte. */
  start: number;
  /** Index one past the value's last byte. */
  end: number;
}

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const COMMA = 0x2c; // ,
const COLON = 0x3a; // :
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }

/** Bytes of a string scanned one by one before a memchr-like search takes over (short strings are the common case). */
const INLINE_STRING_BYTES = 32;

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWhitespace(b: Uint8Array, i: number): number {
  const n = b.length;
  while (i < n && isWhitespace(b[i]!)) i++;
  return i;
}

/**
 * Finds the value of `key` in the top-level object of `json` (UTF-8 bytes of one JSON document).
 * True with `out` set to the value's span; false when the top level is not an object, the key is
 * absent, a top-level key has escapes, or the text is malformed. `key` must be plain ASCII with no
 * quote or backslash.
 */
export function topLevelValueSpan(json: Uint8Array, key: string, out: Span): boolean {
  const n = json.length;
  let i = skipWhitespace(json, 0);
  if (json[i] !== OPEN_BRACE) return false;
  i = skipWhitespace(json, i + 1);
  if (json[i] === CLOSE_BRACE) return false;
  let found = false;
  for (;;) {
    if (json[i] !== QUOTE) return false;
    const keyEnd = stringEnd(json, i);
    if (keyEnd < 0) return false;
    const match = keyEquals(json, i + 1, keyEnd, key);
    if (match < 0) return false;
    i = skipWhitespace(json, keyEnd + 1);
    if (json[i] !== COLON) return false;
    const start = skipWhitespace(json, i + 1);
    const end = valueEnd(json, start);
    if (end < 0) return false;
    if (match === 1) {
      out.start = start;
      out.end = end;
      found = true;
    }
    i = skipWhitespace(json, end);
    if (i >= n) return false;
    const c = json[i];
    if (c === CLOSE_BRACE) break;
    if (c !== COMMA) return false;
    i = skipWhitespace(json, i + 1);
  }
  // Nothing but whitespace may follow the object.
  return found && skipWhitespace(json, i + 1) === n;
}

/** 1 when the key's bytes [from, to) are `key`, 0 when not, -1 when they hold an escape (unknown). */
function keyEquals(b: Uint8Array, from: number, to: number, key: string): number {
  let same = to - from === key.length;
  for (let i = from; i < to; i++) {
    const c = b[i]!;
    if (c === BACKSLASH) return -1;
    if (same && c !== key.charCodeAt(i - from)) same = false;
  }
  return same ? 1 : 0;
}

/**
 * Index of the quote that closes the string opened at `open`, or -1. An escape is a backslash and
 * the byte after it (`\uXXXX`'s hex digits are never quotes), so skipping that byte is exact.
 */
export function stringEnd(b: Uint8Array, open: number): number {
  const n = b.length;
  let i = open + 1;
  const inlineEnd = Math.min(n, i + INLINE_STRING_BYTES);
  for (; i < inlineEnd; i++) {
    const c = b[i]!;
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  // A long string: search for quotes natively; a quote after an odd run of backslashes is escaped.
  // `i` is where a character starts (never the byte after a backslash), so runs are counted from it.
  for (;;) {
    if (i >= n) return -1;
    const q = b.indexOf(QUOTE, i);
    if (q < 0) return -1;
    let k = q - 1;
    while (k >= i && b[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q;
    i = q + 1;
  }
}

/** Index one past the value that starts at `start` (a string, array, object or scalar), or -1. */
function valueEnd(b: Uint8Array, start: number): number {
  const n = b.length;
  if (start >= n) return -1;
  const first = b[start]!;
  if (first === QUOTE) {
    const q = stringEnd(b, start);
    return q < 0 ? -1 : q + 1;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (let i = start; i < n; i++) {
      const c = b[i]!;
      if (c === QUOTE) {
        i = stringEnd(b, i);
        if (i < 0) return -1;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth++;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (--depth === 0) return i + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  let i = start;
  while (i < n) {
    const c = b[i]!;
    if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isWhitespace(c)) break;
    i++;
  }
  return i === start ? -1 : i;
}
