/**
 * What sumshare accepts as a certificate: one pure policy function, and the
 * CA signature check next to it.
 *
 * {@linkcode checkCertificatePolicy} reads no clock and does no I/O: the time
 * is a parameter, so every caller (loading credentials, checking a party at
 * join, a TLS server handed a client's DER certificate) applies the same rules
 * at the time it chooses. {@linkcode verifyIssuedBy} is the part that needs
 * Web Crypto (whose verify is async). A certificate is accepted when both pass:
 *
 * ```ts
 * const party = checkCertificatePolicy(der, "peer", { ca, name: "alice", now: Date.now() });
 * await verifyIssuedBy(party.fields, ca);
 * ```
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { AuthError } from "./errors.ts";
import {
  bytesEqual,
  type CertificateFields,
  ECDSA_WITH_SHA256,
  ecdsaSignatureToP1363,
  readCertificate,
} from "./x509_der.ts";

export type { CertificateFields } from "./x509_der.ts";

/** The one signature scheme sumshare uses everywhere. */
export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * What a party certificate is used for, which decides the extended key usage
 * it needs:
 *
 * - `"hospital"`: the hospital's TLS server certificate (serverAuth);
 * - `"peer"`: a peer's TLS client certificate (clientAuth);
 * - `"mesh"`: a party of the current mesh protocol, where every party both
 *   listens (the hospital's port, a peer's share port) and connects, so it
 *   needs serverAuth and clientAuth. `sumshare certs` has always issued both.
 */
export type PartyUse = "hospital" | "peer" | "mesh";

/** The consortium CA, or a party certificate for one of the {@linkcode PartyUse}s. */
export type CertificateUse = "ca" | PartyUse;

/**
 * A certificate: parsed (by `@peculiar/x509`, or read by
 * {@linkcode readCertificateFields}), one PEM block, or DER bytes (as
 * node:tls hands over).
 */
export type CertificateInput = x509.X509Certificate | CertificateFields | string | BufferSource;

/** The time to check validity windows at: a `Date` or milliseconds since the epoch. */
export type PolicyTime = Date | number;

/** Options for checking the consortium CA certificate. */
export interface CaPolicyOptions {
  now: PolicyTime;
}

/** Options for checking a party certificate. */
export interface PartyPolicyOptions {
  now: PolicyTime;
  /** The consortium CA: it must itself pass the policy, and be the issuer. */
  ca: CertificateInput;
  /** The party's name: the certificate's one CN must be exactly this. */
  name: string;
}

/** The facts the policy accepted about a CA certificate. */
export interface AcceptedCa {
  use: "ca";
  /** The certificate as read, which the checks ran on. */
  fields: CertificateFields;
  /** The certificate as an `X509Certificate` (the one given, or built on first use). */
  readonly certificate: x509.X509Certificate;
  /** The subject as a string (built on first use). */
  readonly subject: string;
  notBefore: Date;
  notAfter: Date;
}

/** The facts the policy accepted about a party certificate. */
export interface AcceptedParty {
  use: PartyUse;
  /** The certificate as read, which the checks ran on. */
  fields: CertificateFields;
  /** The CA as read, itself accepted. */
  caFields: CertificateFields;
  /** The certificate as an `X509Certificate` (the one given, or built on first use). */
  readonly certificate: x509.X509Certificate;
  /** The certificate's single CN, equal to the expected name. */
  name: string;
  /** The CA as an `X509Certificate` (the one given, or built on first use). */
  readonly ca: x509.X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

const OID = {
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
} as const;

/**
 * Extensions that may be marked critical. The first three are enforced here,
 * the subject alternative names by the TLS library's host check, and the key
 * identifiers only help pick a key. Anything else marked critical carries a
 * restriction sumshare would silently ignore (RFC 5280 §4.2: such a
 * certificate must be rejected).
 */
const KNOWN_CRITICAL = new Set<string>(Object.values(OID));

const EKU_NAMES: Record<string, string> = {
  [x509.ExtendedKeyUsage.serverAuth]: "serverAuth",
  [x509.ExtendedKeyUsage.clientAuth]: "clientAuth",
};

/** The extended key usages each use needs. */
const REQUIRED_EKU: Record<PartyUse, readonly string[]> = {
  hospital: [x509.ExtendedKeyUsage.serverAuth],
  peer: [x509.ExtendedKeyUsage.clientAuth],
  mesh: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
};

const USE_LABEL: Record<PartyUse, string> = {
  hospital: "the hospital's TLS server",
  peer: "a peer's TLS client",
  mesh: "a party that both listens and connects",
};

/**
 * Every certificate is read once, by the strict DER reader of
 * `x509_der.ts` (why not `@peculiar/x509` for this: see there, with the
 * numbers). A parsed `X509Certificate` handed in is read from its DER once
 * and remembered; so is the one built lazily for a caller that wants it.
 */
const fieldsOfObject = new WeakMap<x509.X509Certificate, CertificateFields>();
/** The fields {@linkcode readCertificateFields} made: only these are trusted as parsed. */
const issued = new WeakSet<CertificateFields>();
const objectOfFields = new WeakMap<CertificateFields, x509.X509Certificate>();

function isFields(input: unknown): input is CertificateFields {
  return typeof input === "object" && input !== null && issued.has(input as CertificateFields);
}

/**
 * Reads a certificate given as one PEM block, DER, a parsed
 * `X509Certificate`, or fields this function returned before. A string
 * holding anything but exactly one CERTIFICATE block is refused, so every
 * reader of the same text sees the same certificate; so is DER that is not
 * exactly one certificate of sumshare's profile.
 */
export function readCertificateFields(
  input: CertificateInput,
  what = "certificate",
): CertificateFields {
  if (isFields(input)) return input;
  if (input instanceof x509.X509Certificate) {
    const known = fieldsOfObject.get(input);
    if (known) return known;
  }
  let fields: CertificateFields;
  try {
    let der: Uint8Array;
    if (input instanceof x509.X509Certificate) {
      der = new Uint8Array(input.rawData);
    } else if (typeof input === "string") {
      const blocks = x509.PemConverter.decodeWithHeaders(input);
      if (blocks.length !== 1 || blocks[0]!.type !== "CERTIFICATE") {
        throw new Error("not one block");
      }
      der = new Uint8Array(blocks[0]!.rawData);
    } else if (ArrayBuffer.isView(input)) {
      der = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    } else if (input instanceof ArrayBuffer) {
      der = new Uint8Array(input);
    } else {
      throw new TypeError("not a certificate input");
    }
    fields = readCertificate(der); // a copy: later changes to `input` change nothing
  } catch (cause) {
    const form = typeof input === "string"
      ? "one PEM X.509 certificate"
      : "a DER X.509 certificate";
    throw new AuthError(`Invalid ${what}: not ${form}`, { cause });
  }
  issued.add(fields);
  if (input instanceof x509.X509Certificate) {
    fieldsOfObject.set(input, fields);
    objectOfFields.set(fields, input);
  }
  return fields;
}

/**
 * The `@peculiar/x509` object for `fields`, built on first use: only code
 * off the per-neighbour path (names as strings, PEM output, key identifiers)
 * needs it, and building one costs as much as an ECDSA verify.
 */
function objectOf(fields: CertificateFields): x509.X509Certificate {
  let cert = objectOfFields.get(fields);
  if (!cert) {
    cert = new x509.X509Certificate(fields.der);
    objectOfFields.set(fields, cert);
    fieldsOfObject.set(cert, fields);
  }
  return cert;
}

/**
 * Parses a certificate given as one PEM block or as DER, into an
 * `X509Certificate`, after the same strict reading the policy makes (so a
 * certificate it returns is one the policy can judge). A string holding
 * anything but exactly one CERTIFICATE block is refused.
 */
export function parseCertificate(
  input: CertificateInput,
  what = "certificate",
): x509.X509Certificate {
  if (input instanceof x509.X509Certificate && fieldsOfObject.has(input)) return input;
  const fields = readCertificateFields(input, what);
  if (input instanceof x509.X509Certificate) return input;
  try {
    return objectOf(fields);
  } catch (cause) {
    throw new AuthError(`Invalid ${what}: not a DER X.509 certificate`, { cause });
  }
}

/** The CNs of a certificate's subject, in order, without building an `X509Certificate`. */
export function commonNames(input: CertificateInput, what = "certificate"): readonly string[] {
  return readCertificateFields(input, what).commonNames;
}

function millis(time: PolicyTime): number {
  return typeof time === "number" ? time : time.getTime();
}

/** The one reason a certificate fails the policy, or undefined. */
type Reason = string | undefined;

function windowReason(cert: CertificateFields, now: number): Reason {
  if (!(now >= cert.notBefore)) {
    return `it is not valid before ${new Date(cert.notBefore).toISOString()}`;
  }
  if (!(now <= cert.notAfter)) return `it expired at ${new Date(cert.notAfter).toISOString()}`;
  return undefined;
}

function extensionsReason(cert: CertificateFields): Reason {
  const seen = new Set<string>();
  for (const extension of cert.extensions) {
    // A second copy could say something else than the one we read (RFC 5280 §4.2).
    if (seen.has(extension.id)) return `it has extension ${extension.id} more than once`;
    seen.add(extension.id);
    if (extension.critical && !KNOWN_CRITICAL.has(extension.id)) {
      return `it has an unknown critical extension ${extension.id}`;
    }
  }
  return undefined;
}

function keyReason(cert: CertificateFields): Reason {
  return cert.p256 ? undefined : "its key is not ECDSA P-256";
}

function keyUsageReason(cert: CertificateFields, flag: x509.KeyUsageFlags): Reason {
  const usage = cert.keyUsage;
  const name = x509.KeyUsageFlags[flag];
  if (usage === undefined) return `it has no key usage extension (${name} is required)`;
  return (usage & flag) === flag ? undefined : `its key usage does not include ${name}`;
}

function caReason(ca: CertificateFields, now: number): Reason {
  if (!bytesEqual(ca.issuer, ca.subject)) {
    return "it is not self-issued (its issuer is not its subject)";
  }
  if (!ca.isCa) {
    return "it is not a CA (basic constraints do not set the CA flag)";
  }
  return windowReason(ca, now) ?? keyUsageReason(ca, x509.KeyUsageFlags.keyCertSign) ??
    extensionsReason(ca) ?? keyReason(ca);
}

function partyReason(cert: CertificateFields, use: PartyUse, now: number): Reason {
  if (cert.isCa) {
    return "it is a CA certificate, not a party's";
  }
  const windowed = windowReason(cert, now);
  if (windowed) return windowed;
  const usage = keyUsageReason(cert, x509.KeyUsageFlags.digitalSignature);
  if (usage) return usage;
  const eku = cert.extendedKeyUsage;
  const needed = REQUIRED_EKU[use].map((oid) => EKU_NAMES[oid]).join(" and ");
  if (!eku) return `it has no extended key usage (${USE_LABEL[use]} needs ${needed})`;
  const has = new Set(eku);
  const missing = REQUIRED_EKU[use].filter((oid) => !has.has(oid)).map((oid) => EKU_NAMES[oid]);
  if (missing.length > 0) {
    return `its extended key usage lacks ${missing.join(" and ")} (${
      USE_LABEL[use]
    } needs ${needed})`;
  }
  return extensionsReason(cert) ?? keyReason(cert);
}

/** The CA policy alone, on fields already read; throws an {@linkcode AuthError}. */
function acceptCa(ca: CertificateFields, now: number): void {
  const reason = caReason(ca, now);
  if (reason) throw new AuthError(`Invalid CA certificate: ${reason}`);
}

/**
 * Checks `cert` against sumshare's certificate policy for `use` at time
 * `options.now`, and returns what it accepted; throws an
 * {@linkcode AuthError} with a one-line reason otherwise.
 *
 * Every certificate: strict DER of the profile (see `x509_der.ts`); inside
 * its validity window; no extension twice; no critical extension but basic
 * constraints, key usage, extended key usage, subject alternative names and
 * key identifiers; an ECDSA P-256 key.
 * The CA besides: self-issued (issuer and subject the same DER bytes), the CA
 * flag, keyCertSign. A party besides: not a CA, digitalSignature, the
 * extended key usage its use needs, issued (by name: the exact DER bytes of
 * the CA's subject) by a CA that passes the policy at the same time, and
 * exactly one CN, equal to `options.name`. The CA's signature is checked by
 * {@linkcode verifyIssuedBy}.
 */
export function checkCertificatePolicy(
  cert: CertificateInput,
  use: "ca",
  options: CaPolicyOptions,
): AcceptedCa;
export function checkCertificatePolicy(
  cert: CertificateInput,
  use: PartyUse,
  options: PartyPolicyOptions,
): AcceptedParty;
export function checkCertificatePolicy(
  cert: CertificateInput,
  use: CertificateUse,
  options: CaPolicyOptions | PartyPolicyOptions,
): AcceptedCa | AcceptedParty {
  const now = millis(options.now);
  if (use === "ca") {
    const ca = readCertificateFields(cert, "CA certificate");
    acceptCa(ca, now);
    return {
      use,
      fields: ca,
      get certificate() {
        return cert instanceof x509.X509Certificate ? cert : objectOf(ca);
      },
      get subject() {
        return this.certificate.subject;
      },
      notBefore: new Date(ca.notBefore),
      notAfter: new Date(ca.notAfter),
    };
  }
  if (!(use in REQUIRED_EKU)) throw new TypeError(`Unknown certificate use ${String(use)}`);
  if (!("ca" in options) || typeof options.name !== "string") {
    throw new TypeError("A party certificate is checked against a CA and a name");
  }
  const { name } = options;
  const ca = readCertificateFields(options.ca, "CA certificate");
  acceptCa(ca, now);
  const party = readCertificateFields(cert, `certificate for ${JSON.stringify(name)}`);
  if (!bytesEqual(party.issuer, ca.subject)) throw notIssued(name);
  const cns = party.commonNames;
  if (cns.length !== 1) {
    throw new AuthError(
      `Invalid certificate for ${JSON.stringify(name)}: it has ${cns.length} CNs, not exactly one`,
    );
  }
  if (cns[0] !== name) {
    throw new AuthError(
      `Name mismatch: party claims ${JSON.stringify(name)} but its certificate is for ${
        JSON.stringify(cns[0])
      }`,
    );
  }
  const reason = partyReason(party, use, now);
  if (reason) throw new AuthError(`Invalid certificate for ${JSON.stringify(name)}: ${reason}`);
  const caInput = options.ca;
  return {
    use,
    fields: party,
    caFields: ca,
    get certificate() {
      return cert instanceof x509.X509Certificate ? cert : objectOf(party);
    },
    name,
    get ca() {
      return caInput instanceof x509.X509Certificate ? caInput : objectOf(ca);
    },
    notBefore: new Date(party.notBefore),
    notAfter: new Date(party.notAfter),
  };
}

function notIssued(name: string | undefined): AuthError {
  const whose = name === undefined ? "" : ` presented for ${JSON.stringify(name)}`;
  return new AuthError(`Certificate${whose} is not issued by the consortium CA`);
}

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/**
 * Imports a P-256 key from the point in a certificate whose key the policy
 * found to be id-ecPublicKey on P-256. From the raw point, not the SPKI:
 * the SPKI's algorithm is what `p256` already checked, and Web Crypto's
 * "spki" import measured 0.15 ms here against 0.015 ms for "raw" (which
 * checks the point is on the curve all the same). Throws an
 * {@linkcode AuthError} for a certificate whose key is not that.
 */
export async function importCertificateKey(fields: CertificateFields): Promise<CryptoKey> {
  try {
    if (!fields.p256) throw new Error("not id-ecPublicKey on P-256");
    return await crypto.subtle.importKey("raw", fields.publicKey, P256, true, ["verify"]);
  } catch (cause) {
    throw new AuthError("Certificate key is not ECDSA P-256", { cause });
  }
}

/** The CA's key, imported into Web Crypto once per CA rather than per certificate. */
const caKeys = new WeakMap<CertificateFields, Promise<CryptoKey>>();

function caVerifyKey(ca: CertificateFields): Promise<CryptoKey> {
  let key = caKeys.get(ca);
  if (!key) {
    key = importCertificateKey(ca);
    key.catch(() => caKeys.delete(ca));
    caKeys.set(ca, key);
  }
  return key;
}

/**
 * Checks that `cert` is issued by `ca`: the issuer name is the CA's subject
 * (the same DER bytes), the certificate is signed with ecdsa-with-SHA256 (the
 * same algorithm inside and outside the signed part, RFC 5280 §4.1.1.2), and
 * the CA's ECDSA P-256 signature, in its one DER encoding, verifies over the
 * exact tbsCertificate bytes. Throws an {@linkcode AuthError} naming `name`
 * (the party it was presented for) otherwise. The policy is
 * {@linkcode checkCertificatePolicy}'s; this is only the signature.
 */
export async function verifyIssuedBy(
  cert: CertificateInput,
  ca: CertificateInput,
  { name }: { name?: string } = {},
): Promise<void> {
  const party = readCertificateFields(cert);
  const issuer = readCertificateFields(ca, "CA certificate");
  let signed = false;
  try {
    signed = bytesEqual(party.issuer, issuer.subject) &&
      bytesEqual(party.signatureAlgorithm, ECDSA_WITH_SHA256) &&
      bytesEqual(party.innerSignatureAlgorithm, ECDSA_WITH_SHA256) &&
      await crypto.subtle.verify(
        ECDSA_P256,
        await caVerifyKey(issuer),
        ecdsaSignatureToP1363(party.signatureValue),
        party.tbs,
      );
  } catch {
    signed = false;
  }
  if (!signed) throw notIssued(name);
}
