/**
 * Per-session ECDH P-256 key pairs and what is derived from them: the
 * pairwise mask seed s_ij and the directional sealing key a → b, both
 * HKDF-SHA256 over the shared point's x-coordinate with the session as salt.
 * Two key pairs per peer per session, seal (c) and mask (s), so that
 * rebuilding a dropped peer's mask key never opens what was sealed to it.
 *
 * Public keys arrive from other parties, so each is checked to be a point on
 * the curve before use (Web Crypto in Deno imports an off-curve point and
 * only fails later, with an unhelpful message).
 *
 * @module
 */

import { lp } from "./bytes.ts";

const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;

/** Bytes of an uncompressed SEC1 P-256 point. */
export const PUBLIC_KEY_BYTES = 65;

/** P-256 domain parameters (SEC 2). */
const CURVE_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const CURVE_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
/** The group order n: a private scalar is in [1, n − 1]. */
export const CURVE_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/** Raised for a public key that is not a P-256 point. */
export class InvalidKeyError extends Error {
  override name = "InvalidKeyError";
}

/** One ECDH key pair and its public key as 65 bytes. */
export interface EcdhKeyPair {
  privateKey: CryptoKey;
  publicKey: Uint8Array;
}

/** A party's two key pairs for one session. */
export interface SessionKeys {
  seal: EcdhKeyPair;
  mask: EcdhKeyPair;
}

function bigFrom(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  base %= mod;
  for (; exp > 0n; exp >>= 1n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
  }
  return result;
}

/** Whether `raw` is 0x04 ‖ x ‖ y with (x, y) on P-256 (y² = x³ − 3x + b mod p). */
export function isPublicKey(raw: Uint8Array): boolean {
  if (raw.length !== PUBLIC_KEY_BYTES || raw[0] !== 0x04) return false;
  const x = bigFrom(raw.subarray(1, 33));
  const y = bigFrom(raw.subarray(33, 65));
  if (x >= CURVE_P || y >= CURVE_P) return false;
  const rhs = (modPow(x, 3n, CURVE_P) - 3n * x + CURVE_B) % CURVE_P;
  return (y * y) % CURVE_P === (rhs + CURVE_P) % CURVE_P;
}

/** Imports another party's ECDH public key, refusing points not on the curve. */
export async function importPublicKey(raw: Uint8Array): Promise<CryptoKey> {
  if (!isPublicKey(raw)) throw new InvalidKeyError("Invalid key: not a P-256 point");
  return await crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, ECDH, true, []);
}

async function generatePair(): Promise<EcdhKeyPair> {
  // Extractable: only the mask private scalar is ever exported, to be Shamir-shared.
  const pair = await crypto.subtle.generateKey(ECDH, true, ["deriveBits"]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

/** Two fresh key pairs for one session: seal and mask. */
export async function generateSessionKeys(): Promise<SessionKeys> {
  return { seal: await generatePair(), mask: await generatePair() };
}

/** ECDH: the shared point's x-coordinate, 32 bytes. */
export async function sharedSecret(own: CryptoKey, other: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: other }, own, 256));
}

async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    ikm as Uint8Array<ArrayBuffer>,
    "HKDF",
    false,
    ["deriveBits"],
  );
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: salt as Uint8Array<ArrayBuffer>,
        info: info as Uint8Array<ArrayBuffer>,
      },
      key,
      256,
    ),
  );
}

/**
 * s_ij = HKDF-SHA256(IKM = ECDH(mask_i, mask_j), salt = session,
 * info = lp("sumshare/2 mask") ‖ lp(min(i, j)) ‖ lp(max(i, j))), 32 bytes.
 * Both ends compute the same seed.
 */
export async function pairwiseSeed(
  ownMask: CryptoKey,
  otherMask: CryptoKey,
  session: Uint8Array,
  nameA: string,
  nameB: string,
): Promise<Uint8Array> {
  const [low, high] = nameA < nameB ? [nameA, nameB] : [nameB, nameA];
  const info = lp("sumshare/2 mask", low, high);
  let byOther = seedMemo.get(ownMask);
  if (!byOther) seedMemo.set(ownMask, byOther = new WeakMap());
  let bySalt = byOther.get(otherMask);
  if (!bySalt) byOther.set(otherMask, bySalt = new Map());
  // The exact bytes, one char each (the session's length first, so the
  // split is unique; the info is length-prefixed itself): cheaper than hex,
  // which cost 0.05 ms a call here.
  const id = `${session.length}:${String.fromCharCode(...session)}${String.fromCharCode(...info)}`;
  let seed = bySalt.get(id);
  if (!seed) {
    seed = (async () => await hkdf(await sharedSecret(ownMask, otherMask), session, info))();
    // A failure is not kept: the next call derives afresh (and fails with its own error).
    seed.catch(() => bySalt.delete(id));
    bySalt.set(id, seed);
  }
  // A copy each time: no caller can change what another one reads.
  return (await seed).slice();
}

/**
 * Seeds derived so far, per pair of key objects and (session, names): a peer
 * starts deriving its pairwise seeds while it waits for CONFIRMATIONS
 * ({@linkcode preparePairwiseSeeds}), and masking then finds them done. Keyed
 * weakly by the session's own key, so the seeds go when the session's keys do.
 */
const seedMemo = new WeakMap<CryptoKey, WeakMap<CryptoKey, Map<string, Promise<Uint8Array>>>>();

/**
 * Starts deriving the pairwise seed of `own` with each of `others` (name →
 * mask key), so that a later {@linkcode pairwiseSeed} call with the same
 * arguments only waits for it. Failures surface in that later call.
 */
export function preparePairwiseSeeds(
  ownMask: CryptoKey,
  others: ReadonlyMap<string, CryptoKey>,
  session: Uint8Array,
  ownName: string,
): void {
  for (const [name, key] of others) {
    if (name !== ownName) pairwiseSeed(ownMask, key, session, ownName, name).catch(() => {});
  }
}

/**
 * The AES-256-GCM key that seals what `from` sends `to`:
 * HKDF-SHA256(IKM = ECDH(seal_from, seal_to), salt = session,
 * info = lp("sumshare/2 seal") ‖ lp(from) ‖ lp(to)). Directional, so the two
 * directions of a pair never share a key (and with it a nonce). `shared` is
 * {@linkcode sharedSecret} of the two sealing keys, the same at both ends, so
 * a peer computes it once per pair for both directions.
 */
export async function sealingKey(
  shared: Uint8Array,
  session: Uint8Array,
  from: string,
  to: string,
): Promise<CryptoKey> {
  const raw = await hkdf(shared, session, lp("sumshare/2 seal", from, to));
  return await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    "AES-GCM",
    false,
    ["encrypt", "decrypt"],
  );
}
