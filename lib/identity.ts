/**
 * Who a party is: its certificate and key, and how to check another party's.
 *
 * A certificate is accepted only when it is signed by the consortium CA, is
 * currently valid, is an end-entity ECDSA P-256 certificate, and its CN is the
 * name the other side claims. Signatures are ECDSA P-256 with SHA-256 over a
 * domain-separated transcript, so a signature made for one purpose cannot be
 * replayed for another.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { AuthError } from "./errors.ts";
import { ECDSA_P256 } from "./pki.ts";

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

function commonName(cert: x509.X509Certificate): string | undefined {
  const names = cert.subjectName.getField("CN");
  return names.length === 1 ? names[0] : undefined;
}

function parseCertificate(pem: string, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new AuthError(`Invalid ${what}: not a PEM X.509 certificate`, { cause });
  }
}

/** Parses the consortium CA certificate and checks it is a self-signed CA. */
export async function loadCaCertificate(pem: string): Promise<x509.X509Certificate> {
  const ca = parseCertificate(pem, "CA certificate");
  const constraints = ca.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw new AuthError("Invalid CA certificate: it is not a CA");
  if (!(await ca.verify({ signatureOnly: true }))) {
    throw new AuthError("Invalid CA certificate: it is not self-signed");
  }
  return ca;
}

/** The CA's key, imported into Web Crypto once rather than for every certificate. */
const caKeys = new WeakMap<x509.X509Certificate, Promise<CryptoKey>>();

function caVerifyKey(ca: x509.X509Certificate): Promise<CryptoKey> {
  let key = caKeys.get(ca);
  if (!key) caKeys.set(ca, key = ca.publicKey.export(ECDSA_P256, ["verify"], crypto));
  return key;
}

/** Verified certificates, per CA: a round checks each participant's once, not once per connection. */
const verified = new WeakMap<
  x509.X509Certificate,
  Map<string, Promise<VerifiedParty & { notAfter: number }>>
>();

/**
 * Checks that `pem` is a currently valid end-entity certificate issued by
 * `ca` for `expectedName`, and returns its public key. Results are cached for
 * the process (an expired certificate is checked again, and fails).
 */
export async function verifyPartyCertificate(
  pem: string,
  ca: x509.X509Certificate,
  expectedName: string,
): Promise<VerifiedParty> {
  let cache = verified.get(ca);
  if (!cache) verified.set(ca, cache = new Map());
  const key = `${expectedName}\n${pem}`;
  const cached = await cache.get(key)?.catch(() => undefined);
  let entry: Promise<VerifiedParty & { notAfter: number }>;
  if (cached && cached.notAfter >= Date.now()) {
    entry = Promise.resolve(cached);
  } else {
    entry = checkPartyCertificate(pem, ca, expectedName);
    cache.set(key, entry);
  }
  try {
    const { name, certPem, publicKey } = await entry;
    return { name, certPem, publicKey };
  } catch (error) {
    // Failures are not cached: each caller gets the check, and its message, afresh.
    cache.delete(key);
    throw error;
  }
}

/**
 * Checks that `pem` is a currently valid end-entity certificate issued by
 * `ca` for `expectedName`, and returns its public key.
 */
async function checkPartyCertificate(
  pem: string,
  ca: x509.X509Certificate,
  expectedName: string,
): Promise<VerifiedParty & { notAfter: number }> {
  const cert = parseCertificate(pem, "certificate");
  let signedByCa = false;
  try {
    signedByCa = cert.issuer === ca.subject &&
      await cert.verify({ publicKey: await caVerifyKey(ca), signatureOnly: true });
  } catch {
    signedByCa = false;
  }
  if (!signedByCa) {
    throw new AuthError(
      `Certificate presented for ${
        JSON.stringify(expectedName)
      } is not issued by the consortium CA`,
    );
  }
  const now = Date.now();
  if (now < cert.notBefore.getTime() || now > cert.notAfter.getTime()) {
    throw new AuthError(
      `Certificate of ${JSON.stringify(expectedName)} is expired or not yet valid`,
    );
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) {
    throw new AuthError("Certificate is a CA certificate, not a party's");
  }
  const cn = commonName(cert);
  if (cn !== expectedName) {
    throw new AuthError(
      `Name mismatch: party claims ${JSON.stringify(expectedName)} but its certificate is for ${
        JSON.stringify(cn ?? "(no single CN)")
      }`,
    );
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await cert.publicKey.export(ECDSA_P256, ["verify"], crypto);
  } catch (cause) {
    throw new AuthError("Certificate key is not ECDSA P-256", { cause });
  }
  return { name: cn, certPem: pem, publicKey, notAfter: cert.notAfter.getTime() };
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
 * the certificate is issued by the CA for `name`, and the key matches it.
 */
export async function loadIdentity(name: string, paths: CredentialPaths): Promise<Identity> {
  const caPem = await readText(paths.ca, "CA certificate");
  const certPem = await readText(paths.cert, "certificate");
  const keyPem = await readText(paths.key, "private key");
  const ca = await loadCaCertificate(caPem);
  const own = await verifyPartyCertificate(certPem, ca, name);
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
