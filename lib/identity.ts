/**
 * Who a party is: its certificate and key, and how to check another party's.
 *
 * A certificate is accepted only when it passes the certificate policy
 * (`certpolicy.ts`: validity windows of it and the CA, key usages, the
 * extended key usage its use needs, no unknown critical extensions, an ECDSA
 * P-256 key, its one CN the name the other side claims) and the consortium
 * CA's signature on it verifies. Signatures are ECDSA P-256 with SHA-256 over
 * a domain-separated transcript, so a signature made for one purpose cannot be
 * replayed for another.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import {
  type CertificateFields,
  checkCertificatePolicy,
  ECDSA_P256,
  importCertificateKey,
  type PartyUse,
  type PolicyTime,
  readCertificateFields,
  verifyIssuedBy,
} from "./certpolicy.ts";
import { dirname, join } from "node:path";
import { fromCanonicalBase64, toHex } from "./encoding.ts";
import { AuthError } from "./errors.ts";

export type { PartyUse } from "./certpolicy.ts";

/** A party's own credentials, loaded and cross-checked. */
export interface Identity {
  name: string;
  /** The CA certificate every other party must chain to. */
  ca: x509.X509Certificate;
  caPem: string;
  /** This party's certificate, PEM. */
  certPem: string;
  /** The TLS server key, PEM (only handed to the TLS listener). */
  keyPem: string;
  privateKey: CryptoKey;
}

/** A verified certificate of another party. */
export interface VerifiedParty {
  name: string;
  certPem: string;
  publicKey: CryptoKey;
}

/** Options for checking a certificate. */
export interface CertificateCheckOptions {
  /**
   * What the certificate is used for (default `"mesh"`: the current protocol,
   * where every party listens and connects, so needs serverAuth and clientAuth).
   */
  use?: PartyUse;
  /** The time to check validity windows at (default: now). */
  now?: PolicyTime;
  /**
   * Told a one-line warning when the private key file is readable by its
   * group or others (the usual `cp`/`scp` mistake; sumshare writes keys
   * 0600). The key is still used: refusing would break a working setup.
   */
  warn?: (line: string) => void;
}

/**
 * Parses the consortium CA certificate and checks it passes the CA policy
 * (validity window, CA flag, keyCertSign, …) and is self-signed.
 */
export async function loadCaCertificate(
  pem: string,
  { now = Date.now() }: Pick<CertificateCheckOptions, "now"> = {},
): Promise<x509.X509Certificate> {
  const ca = checkCertificatePolicy(pem, "ca", { now }).certificate;
  try {
    await verifyIssuedBy(ca, ca);
  } catch (cause) {
    throw new AuthError("Invalid CA certificate: it is not self-signed", { cause });
  }
  return ca;
}

/** A certificate whose CA signature verified: as read, and its imported key. */
interface SignedEntry {
  fields: CertificateFields;
  key: Promise<CryptoKey>;
}

/**
 * Certificates whose CA signature verified, with their imported keys, per CA:
 * a round checks each participant's signature once, not once per connection,
 * and a process that lives longer than a round (`--serve`) reads each
 * certificate once. Only the reading, the signature and the key are cached;
 * the policy, validity windows included, is applied afresh on every call.
 */
const signed = new WeakMap<x509.X509Certificate, Map<string, SignedEntry>>();

function signedCache(ca: x509.X509Certificate): Map<string, SignedEntry> {
  let cache = signed.get(ca);
  if (!cache) signed.set(ca, cache = new Map());
  return cache;
}

function signedKey(
  cache: Map<string, SignedEntry>,
  key: string,
  cert: CertificateFields,
  ca: CertificateFields,
  name: string,
): Promise<CryptoKey> {
  const hit = cache.get(key);
  if (hit) return hit.key;
  const entry: SignedEntry = {
    fields: cert,
    key: (async () => {
      await verifyIssuedBy(cert, ca, { name });
      return await importCertificateKey(cert);
    })(),
  };
  // Failures are not cached: each caller gets the check, and its message, afresh.
  entry.key.catch(() => {
    if (cache.get(key) === entry) cache.delete(key);
  });
  cache.set(key, entry);
  return entry.key;
}

/**
 * Checks that `pem` is a certificate issued by `ca` for `expectedName` that
 * passes the certificate policy for `options.use` now, and returns its public
 * key. The CA signature check is cached for the process; the policy is not,
 * so a certificate (or CA) that has expired since is refused.
 */
export async function verifyPartyCertificate(
  pem: string,
  ca: x509.X509Certificate,
  expectedName: string,
  { use = "mesh", now = Date.now() }: CertificateCheckOptions = {},
): Promise<VerifiedParty> {
  const cache = signedCache(ca);
  const key = `${expectedName}\n${pem}`;
  const cert = cache.get(key)?.fields ?? readCertificateFields(pem);
  const accepted = checkCertificatePolicy(cert, use, { ca, name: expectedName, now });
  const publicKey = await signedKey(cache, key, cert, accepted.caFields, expectedName);
  await assertNotRevoked(cert, accepted.name, ca);
  return { name: accepted.name, certPem: pem, publicKey };
}

const encoder = new TextEncoder();

/**
 * The bytes a signature covers: a purpose label and the fields, as a JSON
 * array so no field can run into the next.
 */
export function transcript(purpose: string, fields: readonly string[]): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify([`sumshare/1 ${purpose}`, ...fields]));
}

/** Signs a transcript with this party's key (IEEE P1363, 64 bytes). */
export async function signTranscript(
  key: CryptoKey,
  purpose: string,
  fields: readonly string[],
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign(ECDSA_P256, key, transcript(purpose, fields)));
}

/** Verifies a transcript signature. */
export async function verifyTranscript(
  key: CryptoKey,
  signature: Uint8Array,
  purpose: string,
  fields: readonly string[],
): Promise<boolean> {
  return await crypto.subtle.verify(
    ECDSA_P256,
    key,
    signature as Uint8Array<ArrayBuffer>,
    transcript(purpose, fields),
  );
}

/** Where a party's credentials are on disk. */
export interface CredentialPaths {
  ca: string;
  cert: string;
  key: string;
  /**
   * The CA's signed deny-list ({@linkcode parseRevocationList}); default:
   * `revoked.json` next to the CA certificate, used when it exists.
   */
  revoked?: string | undefined;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (cause) {
    throw new AuthError(`Cannot read ${what} ${path}`, { cause });
  }
}

/**
 * Loads a party's CA, certificate and key, and checks they belong together:
 * the CA passes the CA policy, the certificate is issued by it for `name` and
 * passes the policy for `options.use`, and the key matches it.
 */
export async function loadIdentity(
  name: string,
  paths: CredentialPaths,
  options: CertificateCheckOptions = {},
): Promise<Identity> {
  const caPem = await readText(paths.ca, "CA certificate");
  const certPem = await readText(paths.cert, "certificate");
  const keyPem = await readText(paths.key, "private key");
  if (options.warn) {
    // Not on Windows, where there are no such bits (mode is null).
    const mode = (await Deno.stat(paths.key).catch(() => undefined))?.mode;
    if (mode != null && (mode & 0o077) !== 0) {
      options.warn(
        `warning: the private key ${paths.key} is readable by others (mode ${
          (mode & 0o777).toString(8).padStart(4, "0")
        }); make it 0600 (chmod 600)`,
      );
    }
  }
  const ca = await loadCaCertificate(caPem, options.now === undefined ? {} : { now: options.now });
  const revoked = await loadRevocationFile(paths, ca);
  if (revoked !== undefined) trustRevocations(ca, revoked);
  const own = await verifyPartyCertificate(certPem, ca, name, options);
  let privateKey: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(keyPem);
    privateKey = await crypto.subtle.importKey("pkcs8", der, ECDSA_P256, false, ["sign"]);
  } catch (cause) {
    throw new AuthError(`Invalid private key ${paths.key}: expected a PKCS#8 ECDSA P-256 key`, {
      cause,
    });
  }
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await signTranscript(privateKey, "key-check", [String(probe)]);
  if (!(await verifyTranscript(own.publicKey, sig, "key-check", [String(probe)]))) {
    throw new AuthError(`Private key ${paths.key} does not match certificate ${paths.cert}`);
  }
  return { name, ca, caPem, certPem, keyPem, privateKey };
}

/**
 * A consortium's deny-list, `sumshare-revoked/1`: parties the CA has
 * revoked, by name and by their certificate's serial number and SHA-256
 * fingerprint, with a sequence number that grows with each new list, signed
 * with the CA key (ECDSA P-256 over the domain-separated transcript of every
 * other field). A signed JSON statement checked with Web Crypto needs no
 * library: an X.509 CRL (which @peculiar/x509 can build) would carry
 * serials only, and sumshare names parties by CN.
 */
export interface RevocationList {
  /** Higher is newer. */
  sequence: number;
  issued: string;
  entries: readonly RevokedParty[];
}

/** One revoked party. */
export interface RevokedParty {
  name: string;
  /** Its certificate's serial number (hex), when the CA had the certificate. */
  serial: string | null;
  /** SHA-256 of its certificate (hex), likewise. */
  fingerprint: string | null;
  time: string;
}

/** The format tag of a deny-list file. */
export const REVOCATION_FORMAT = "sumshare-revoked/1";
/** The deny-list's file name, next to ca.crt. */
export const REVOCATION_FILE = "revoked.json";
/** The purpose label the CA signs a deny-list under (see {@linkcode transcript}). */
export const REVOCATION_PURPOSE = "revocation-list";

/** SHA-256 of a certificate's DER, hex: how a deny-list names a certificate and its CA. */
export async function certificateFingerprint(
  cert: x509.X509Certificate | CertificateFields,
): Promise<string> {
  const der = cert instanceof x509.X509Certificate ? cert.rawData : cert.der;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", der)));
}

/** The fields the CA signs, in order: every field of the list but the signature. */
export function revocationFields(
  caFingerprint: string,
  list: RevocationList,
): string[] {
  return [
    REVOCATION_FORMAT,
    caFingerprint,
    String(list.sequence),
    list.issued,
    JSON.stringify(list.entries.map((e) => [e.name, e.serial, e.fingerprint, e.time])),
  ];
}

const HEX = /^[0-9a-f]+$/;

/**
 * Parses a deny-list and verifies it: exactly its fields, this CA's
 * fingerprint, and the CA's signature. Anything else is an
 * {@linkcode AuthError}: a list that does not verify is never ignored, since
 * ignoring it would let anyone who can edit the file re-admit a party.
 */
export async function parseRevocationList(
  text: string,
  ca: x509.X509Certificate,
  where = "the revocation list",
): Promise<RevocationList> {
  const bad = (why: string) => new AuthError(`Invalid revocation list ${where}: ${why}`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new AuthError(`Invalid revocation list ${where}: not JSON`, { cause });
  }
  const keys = ["format", "ca", "sequence", "issued", "revoked", "signature"];
  if (
    typeof doc !== "object" || doc === null || Array.isArray(doc) ||
    Object.keys(doc).length !== keys.length || !keys.every((k) => Object.hasOwn(doc, k))
  ) {
    throw bad(`expected exactly the fields ${keys.join(", ")}`);
  }
  if (doc["format"] !== REVOCATION_FORMAT) throw bad(`the format is not ${REVOCATION_FORMAT}`);
  const sequence = doc["sequence"];
  if (!Number.isSafeInteger(sequence) || (sequence as number) < 1) {
    throw bad("sequence is not a whole number from 1");
  }
  if (typeof doc["issued"] !== "string") throw bad("issued is not a time");
  const raw = doc["revoked"];
  if (!Array.isArray(raw)) throw bad("revoked is not a list");
  const entries: RevokedParty[] = raw.map((e: unknown, i) => {
    const entry = e as Record<string, unknown>;
    const fields = ["name", "serial", "fingerprint", "time"];
    const hexOrNull = (v: unknown) => v === null || (typeof v === "string" && HEX.test(v));
    if (
      typeof entry !== "object" || entry === null || Object.keys(entry).length !== 4 ||
      !fields.every((k) => Object.hasOwn(entry, k)) || typeof entry["name"] !== "string" ||
      !hexOrNull(entry["serial"]) || !hexOrNull(entry["fingerprint"]) ||
      typeof entry["time"] !== "string"
    ) {
      throw bad(`entry ${i + 1} is not {name, serial, fingerprint, time}`);
    }
    return entry as unknown as RevokedParty;
  });
  const caFingerprint = await certificateFingerprint(ca);
  if (doc["ca"] !== caFingerprint) throw bad("it was issued for another CA");
  const signature = typeof doc["signature"] === "string"
    ? fromCanonicalBase64(doc["signature"])
    : undefined;
  if (signature === undefined) throw bad("signature is not base64");
  const list: RevocationList = { sequence: sequence as number, issued: doc["issued"], entries };
  const key = await ca.publicKey.export(ECDSA_P256, ["verify"], crypto);
  const fields = revocationFields(caFingerprint, list);
  if (!(await verifyTranscript(key, signature, REVOCATION_PURPOSE, fields))) {
    throw bad(
      "the CA's signature does not verify (the file was changed, or not signed by this CA)",
    );
  }
  return list;
}

/** The deny-list in force for each CA certificate object (see {@linkcode trustRevocations}). */
const denyLists = new WeakMap<x509.X509Certificate, RevocationList>();

/**
 * Makes `list` (already verified against `ca`) the one every
 * {@linkcode verifyPartyCertificate} call with this `ca` enforces: the TLS
 * authorize step, each INVITE's and START roster's certificates, and a
 * party's own at load. It is attached to the CA object so every check that
 * trusts the CA applies it, with no check left to remember it.
 */
export function trustRevocations(ca: x509.X509Certificate, list: RevocationList): void {
  denyLists.set(ca, list);
}

/** The deny-list in force for `ca`, if any. */
export function revocationsOf(ca: x509.X509Certificate): RevocationList | undefined {
  return denyLists.get(ca);
}

async function assertNotRevoked(
  cert: CertificateFields,
  name: string,
  ca: x509.X509Certificate,
): Promise<void> {
  const list = denyLists.get(ca);
  if (list === undefined || list.entries.length === 0) return;
  const serial = cert.serial;
  const fingerprint = await certificateFingerprint(cert);
  const hit = list.entries.find((e) =>
    e.name === name || e.serial === serial || e.fingerprint === fingerprint
  );
  if (hit !== undefined) {
    throw new AuthError(
      `Refused: the certificate of ${JSON.stringify(name)} is revoked ` +
        `(the CA's revocation list, sequence ${list.sequence})`,
    );
  }
}

/**
 * Reads and verifies `paths.revoked`, or `revoked.json` next to the CA
 * certificate when it exists; a named file that is missing is an error.
 */
async function loadRevocationFile(
  paths: CredentialPaths,
  ca: x509.X509Certificate,
): Promise<RevocationList | undefined> {
  const path = paths.revoked ?? join(dirname(paths.ca), REVOCATION_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    if (paths.revoked === undefined && cause instanceof Deno.errors.NotFound) return undefined;
    throw new AuthError(`Cannot read the revocation list ${path}`, { cause });
  }
  return await parseRevocationList(text, ca, path);
}
