// Nesting depth of JSON, measured before anything parses, validates or recurses over it (a message
// nested 5,000 levels deep overflows the stack of every recursive walker: JSON.stringify, ajv,
// String(array)). Pure and allocation-light: one pass over the text, no tokens, no copies.
//
// The scan is not a validator. Brackets inside strings do not count (escapes are honoured);
// malformed text is scanned as it is (a stray closer never takes the depth below 0) and is left for
// the parser to reject afterwards. Bytes and strings give the same answer: in UTF-8 the bytes of a
// multi-byte character are all >= 0x80, so they never look like a bracket, a quote or a backslash.

/** Deepest nesting of arrays and objects in a message, envelope and data together (`max-message-depth`). */
export const DEFAULT_MAX_MESSAGE_DEPTH = 64;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }

/**
 * The deepest nesting of `[`/`{` in JSON text, outside strings. The scan stops as soon as the depth
 * passes `stopAbove` (then the answer is `stopAbove + 1`), so a hostile frame costs no more than
 * the bytes up to its first excess bracket.
 */
export function jsonDepth(text: string | Uint8Array, stopAbove = Number.MAX_SAFE_INTEGER): number {
  return typeof text === 'string' ? depthOfString(text, stopAbove) : depthOfBytes(text, stopAbove);
}

/** Whether JSON text nests arrays/objects deeper than `maxDepth` (`{}` and `[]` are depth 1, a scalar 0). */
export function exceedsJsonDepth(text: string | Uint8Array, maxDepth: number): boolean {
  return jsonDepth(text, maxDepth) > maxDepth;
}

function depthOfString(s: string, stopAbove: number): number {
  const n = s.length;
  let depth = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEndInString(s, i);
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if ((c === CLOSE_BRACKET || c === CLOSE_BRACE) && depth > 0) {
      depth--;
    }
  }
  return max;
}

function depthOfBytes(b: Uint8Array, stopAbove: number): number {
  const n = b.length;
  let depth = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      i = stringEndInBytes(b, i);
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if ((c === CLOSE_BRACKET || c === CLOSE_BRACE) && depth > 0) {
      depth--;
    }
  }
  return max;
}

/**
 * The index of the quote that closes the string opened at `open` (or the text's length when it
 * never closes). A quote preceded by an odd run of backslashes is escaped. Each backslash is counted
 * at most once (a run ends at the quote that follows it), so this stays linear.
 */
function stringEndInString(s: string, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = s.indexOf('"', from);
    if (q < 0) return s.length;
    let k = q - 1;
    while (k > open && s.charCodeAt(k) === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q;
    from = q + 1;
  }
}

function stringEndInBytes(b: Uint8Array, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q < 0) return b.length;
    let k = q - 1;
    while (k > open && b[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q;
    from = q + 1;
  }
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function skipWhitespace(s: string, i: number): number {
  while (i < s.length && WHITESPACE.has(s.charCodeAt(i))) i++;
  return i;
}

/**
 * The string value of a key of the top-level object, read without parsing the text (so that a
 * message refused before parsing, e.g. for its depth, can still be answered `in_reply_to` its id).
 * Keys are compared as written (a key spelled with escapes is not found); values longer than
 * `maxChars` are not returned. One pass, linear in the text; undefined when not found.
 */
export function topLevelString(text: string, key: string, maxChars = 1024): string | undefined {
  const n = text.length;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEndInString(text, i);
      if (depth === 1 && end - i - 1 === key.length && text.startsWith(key, i + 1)) {
        let j = skipWhitespace(text, end + 1);
        if (text.charCodeAt(j) === 0x3a /* : */) {
          j = skipWhitespace(text, j + 1);
          if (text.charCodeAt(j) !== QUOTE) return undefined;
          const valueEnd = stringEndInString(text, j);
          if (valueEnd >= n) return undefined;
          return stringValue(text.slice(j, valueEnd + 1), maxChars);
        }
      }
      i = end;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      depth++;
    } else if ((c === CLOSE_BRACKET || c === CLOSE_BRACE) && depth > 0) {
      depth--;
    }
  }
  return undefined;
}

/** A quoted JSON string literal → its value (escapes decoded), or undefined when malformed or too long. */
function stringValue(literal: string, maxChars: number): string | undefined {
  // An escape is at most 6 characters for 1; anything longer cannot decode to maxChars.
  if (literal.length - 2 > maxChars * 6) return undefined;
  if (!literal.includes('\\')) return literal.length - 2 <= maxChars ? literal.slice(1, -1) : undefined;
  try {
    const v = JSON.parse(literal) as unknown;
    return typeof v === 'string' && v.length <= maxChars ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether an already parsed value (or one built in memory) nests arrays/objects deeper than
 * `maxDepth`. Iterative: it never recurses itself, whatever the depth, and stops at the first
 * excess level. A cyclic value counts as too deep.
 */
export function exceedsValueDepth(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const v = stack.pop() as object;
    const d = depths.pop()!;
    if (d > maxDepth) return true;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (typeof item === 'object' && item !== null) {
          stack.push(item);
          depths.push(d + 1);
        }
      }
    } else {
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        const item: unknown = (v as Record<string, unknown>)[k];
        if (typeof item === 'object' && item !== null) {
          stack.push(item);
          depths.push(d + 1);
        }
      }
    }
  }
  return false;
}
