/**
 * A strict JSON parser for protocol messages. `JSON.parse` silently keeps the
 * last of two equal keys and reads `1.0`, `1e0` and `-0` as the number 1 or 0,
 * so two different texts would decode to the same message; a strict decoder
 * must see them. This parser accepts RFC 8259 JSON except: a repeated key in
 * an object, any number that is not a canonical integer (`0` or a non-zero
 * digit followed by digits, no sign, fraction or exponent — the protocol
 * sends no negative or fractional numbers), integers above 2^53 − 1, and
 * nesting deeper than a small limit. Pure: no I/O.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";

/** Deeper nesting than any v2 message needs; bounds the recursion. */
const MAX_DEPTH = 8;

/** How {@linkcode parseStrictJson} reads numbers and how deep it goes. */
export interface StrictJsonOptions {
  /**
   * "integers" (the default, for protocol messages): only canonical
   * unsigned integers up to 2^53 − 1. "json": any RFC 8259 number, read as
   * `JSON.parse` reads it (receipts carry fractional statistics).
   */
  numbers?: "integers" | "json";
  /** The deepest nesting accepted (default 8). */
  maxDepth?: number;
}

/** An RFC 8259 number at the start of the text. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function fail(what: string, at: number): never {
  throw new ProtocolError(`Invalid message: ${what} at offset ${at}`);
}

/** Parses `text` strictly; throws ProtocolError on anything not accepted. */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? MAX_DEPTH;
  const anyNumber = options.numbers === "json";
  let i = 0;
  const skip = () => {
    while (i < text.length && WHITESPACE.has(text.charCodeAt(i))) i++;
  };

  const parseString = (): string => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in string", i);
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape", i);
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail("bad escape", i);
        i += 2;
        continue;
      }
      i++;
    }
    i++; // closing quote
    // The slice is well-formed JSON string syntax now; JSON.parse decodes the escapes.
    return JSON.parse(text.slice(start, i)) as string;
  };

  const parseNumber = (): number => {
    if (anyNumber) {
      const any = JSON_NUMBER.exec(text.slice(i, i + 400));
      if (!any) fail("bad number", i);
      i += any[0].length;
      return Number(any[0]);
    }
    const m = /^(?:0|[1-9][0-9]*)(?![0-9.eE+-])/.exec(text.slice(i, i + 24));
    if (!m) fail("non-canonical number (only unsigned integers without fraction or exponent)", i);
    const value = Number(m[0]);
    if (!Number.isSafeInteger(value)) fail("integer above 2^53 − 1", i);
    i += m[0].length;
    return value;
  };

  const parseValue = (depth: number): unknown => {
    if (depth > maxDepth) fail("nesting too deep", i);
    skip();
    const c = text[i];
    if (c === "{") {
      i++;
      const out: Record<string, unknown> = {};
      skip();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail("expected a key", i);
        const keyAt = i;
        const key = parseString();
        if (Object.hasOwn(out, key)) {
          fail(`duplicate key ${JSON.stringify(key).slice(0, 40)}`, keyAt);
        }
        skip();
        if (text[i] !== ":") fail("expected ':'", i);
        i++;
        // defineProperty: a key "__proto__" stays an ordinary own property.
        Object.defineProperty(out, key, {
          value: parseValue(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        skip();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return out;
        }
        fail("expected ',' or '}'", i);
      }
    }
    if (c === "[") {
      i++;
      const out: unknown[] = [];
      skip();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(parseValue(depth + 1));
        skip();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return out;
        }
        fail("expected ',' or ']'", i);
      }
    }
    if (c === '"') return parseString();
    if (c !== undefined && ((c >= "0" && c <= "9") || (anyNumber && c === "-"))) {
      return parseNumber();
    }
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return value;
      }
    }
    return fail("unexpected character", i);
  };

  const value = parseValue(0);
  skip();
  if (i !== text.length) fail("trailing characters", i);
  return value;
}
