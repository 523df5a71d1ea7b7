/**
 * The digest that INPUT and DONE signatures cover: SHA-256 over the SHA-256s of
 * the vector's 65,536-element pieces, as docs/protocol.md (§8.4) specifies. The
 * expected values are computed here from that text, not from the code.
 */
import assert from "node:assert/strict";
import { vectorDigest } from "../lib/crypto/digest.ts";

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The definition in docs/protocol.md (§8.4), written out independently. */
async function specDigest(values: number[]): Promise<string> {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat64(i * 8, v, true));
  const piece = 65_536 * 8;
  const hashes: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += piece) {
    hashes.push(await sha256(bytes.subarray(offset, offset + piece)));
  }
  const joined = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => joined.set(h, i * 32));
  return hex(await sha256(joined));
}

Deno.test("vectorDigest follows the specified hash of piece hashes", async () => {
  for (const length of [1, 3, 65_535, 65_536, 65_537, 2 * 65_536 + 5]) {
    const values = Array.from({ length }, (_, i) => (i * 7919) % 1_000_003);
    assert.equal(
      await vectorDigest(Float64Array.from(values)),
      await specDigest(values),
      `${length}`,
    );
  }
});

Deno.test("vectorDigest changes when any one element, or the length, changes", async () => {
  const vector = new Float64Array(2 * 65_536 + 5).map((_, i) => i);
  const original = await vectorDigest(vector);
  for (const index of [0, 65_535, 65_536, vector.length - 1]) {
    const altered = vector.slice();
    altered[index] = altered[index]! + 1;
    assert.notEqual(await vectorDigest(altered), original, `element ${index}`);
  }
  assert.notEqual(await vectorDigest(vector.subarray(0, vector.length - 1)), original);
  // A view into a larger buffer hashes only its own elements.
  const view = new Float64Array(vector.length + 2).subarray(1, vector.length + 1);
  view.set(vector);
  assert.equal(await vectorDigest(view), original);
});
