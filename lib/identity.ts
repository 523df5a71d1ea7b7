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
  checkCertificatePolicy,
  ECDSA_P256,
  parseCertificate,
  type PartyUse,
  type PolicyTime,
  verifyIssuedBy,
} from "./certpolicy.ts";
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

/**
 * Certificates whose CA signature verified, with their imported keys, per CA:
 * a round checks each participant's signature once, not once per connection.
 * Only the signature and the key are cached; the policy, validity windows
 * included, is applied afresh on every call.
 */
const signed = new WeakMap<x509.X509Certificate, Map<string, Promise<CryptoKey>>>();

function signedKey(
  cert: x509.X509Certificate,
  pem: string,
  ca: x509.X509Certificate,
  name: string,
): Promise<CryptoKey> {
  let cache = signed.get(ca);
  if (!cache) signed.set(ca, cache = new Map());
  const key = `${name}\n${pem}`;
  let entry = cache.get(key);
  if (!entry) {
    entry = (async () => {
      await verifyIssuedBy(cert, ca, { name });
      try {
        return await cert.publicKey.export(ECDSA_P256, ["verify"], crypto);
      } catch (cause) {
        throw new AuthError("Certificate key is not ECDSA P-256", { cause });
      }
    })();
    // Failures are not cached: each caller gets the check, and its message, afresh.
    entry.catch(() => cache.delete(key));
    cache.set(key, entry);
  }
  return entry;
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
  const accepted = checkCertificatePolicy(parseCertificate(pem), use, {
    ca,
    name: expectedName,
    now,
  });
  const publicKey = await signedKey(accepted.certificate, pem, ca, expectedName);
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
  const ca = await loadCaCertificate(caPem, options.now === undefined ? {} : { now: options.now });
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
