/**
 * Byte encodings used on the wire and in receipts: lowercase hex and
 * canonical padded base64. One place, so every part of sumshare writes (and
 * accepts) exactly the same spelling.
 *
 * @module
 */

/** Lowercase hex, two digits a byte. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `byteCount` random bytes from Web Crypto, as lowercase hex. */
export function randomHex(byteCount: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** Standard padded base64; in pieces, so long vectors do not overflow the call stack. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Decodes base64 and returns the bytes only if `text` is their canonical
 * spelling (what {@linkcode toBase64} writes); undefined otherwise.
 */
export function fromCanonicalBase64(text: string): Uint8Array | undefined {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
  return toBase64(bytes) === text ? bytes : undefined;
}
