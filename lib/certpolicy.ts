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
 * await verifyIssuedBy(party.certificate, ca);
 * ```
 *
 * @module
 */

import { ECParameters } from "@peculiar/asn1-ecc";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  BasicConstraints,
  type Certificate,
  ExtendedKeyUsage,
  KeyUsage,
  type TBSCertificate,
} from "@peculiar/asn1-x509";
import * as x509 from "@peculiar/x509";
import { AuthError } from "./errors.ts";

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

/** A certificate: parsed, one PEM block, or DER bytes (as node:tls hands over). */
export type CertificateInput = x509.X509Certificate | string | BufferSource;

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
  certificate: x509.X509Certificate;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

/** The facts the policy accepted about a party certificate. */
export interface AcceptedParty {
  use: PartyUse;
  certificate: x509.X509Certificate;
  /** The certificate's single CN, equal to the expected name. */
  name: string;
  /** The CA, parsed and itself accepted. */
  ca: x509.X509Certificate;
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

/** What the policy reads from a certificate's extensions and key, decoded once. */
interface CertificateFacts {
  /** Each extension's OID and criticality, in order (duplicates kept, so they can be refused). */
  extensions: { id: string; critical: boolean }[];
  /** Basic constraints' CA flag (false when the extension is absent). */
  isCa: boolean;
  /** Key usage flags (x509.KeyUsageFlags bits), or undefined without the extension. */
  keyUsage: number | undefined;
  /** Extended key usage OIDs, or undefined without the extension. */
  extendedKeyUsage: string[] | undefined;
  /** Whether the subject key is an EC key on P-256. */
  p256: boolean;
}

const EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const P256_CURVE = "1.2.840.10045.3.1.7";

/**
 * A parsed certificate whose policy facts are decoded straight from its ASN.1
 * structure. Why not `X509Certificate.extensions`: that getter re-serializes
 * every extension and builds a typed object for each (the subject
 * alternative names included), which measured 0.45–0.6 ms a certificate here
 * against 0.06 ms for reading the three extensions the policy needs; a peer
 * checks every participant's certificate in every round.
 */
class PolicyCertificate extends x509.X509Certificate {
  #facts: CertificateFacts | undefined;

  get facts(): CertificateFacts {
    return this.#facts ??= decodeFacts((this.asn as Certificate).tbsCertificate);
  }
}

function decodeFacts(tbs: TBSCertificate): CertificateFacts {
  const facts: CertificateFacts = {
    extensions: [],
    isCa: false,
    keyUsage: undefined,
    extendedKeyUsage: undefined,
    p256: false,
  };
  // The first copy of an extension is the one read; a second copy is refused
  // by extensionsReason before anything relies on either.
  const seen = new Set<string>();
  for (const extension of tbs.extensions ?? []) {
    facts.extensions.push({ id: extension.extnID, critical: extension.critical });
    if (seen.has(extension.extnID)) continue;
    seen.add(extension.extnID);
    const value = extension.extnValue.buffer;
    if (extension.extnID === OID.basicConstraints) {
      facts.isCa = AsnConvert.parse(value, BasicConstraints).cA;
    } else if (extension.extnID === OID.keyUsage) {
      facts.keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
    } else if (extension.extnID === OID.extKeyUsage) {
      facts.extendedKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
    }
  }
  const key = tbs.subjectPublicKeyInfo.algorithm;
  if (key.algorithm === EC_PUBLIC_KEY && key.parameters) {
    facts.p256 = AsnConvert.parse(key.parameters, ECParameters).namedCurve === P256_CURVE;
  }
  return facts;
}

function factsOf(cert: x509.X509Certificate): CertificateFacts {
  return (cert instanceof PolicyCertificate ? cert : parseCertificate(cert) as PolicyCertificate)
    .facts;
}

/**
 * Parses a certificate given as one PEM block or as DER. A string holding
 * anything but exactly one CERTIFICATE block is refused, so every reader of
 * the same text sees the same certificate.
 */
export function parseCertificate(
  input: CertificateInput,
  what = "certificate",
): x509.X509Certificate {
  if (input instanceof PolicyCertificate) return input;
  try {
    let der: BufferSource;
    if (input instanceof x509.X509Certificate) {
      der = input.rawData;
    } else if (typeof input === "string") {
      const blocks = x509.PemConverter.decodeWithHeaders(input);
      if (blocks.length !== 1 || blocks[0]!.type !== "CERTIFICATE") {
        throw new Error("not one block");
      }
      der = blocks[0]!.rawData;
    } else {
      der = input;
    }
    const cert = new PolicyCertificate(der);
    void cert.facts; // decoded now, so a malformed extension is refused here as unparseable
    return cert;
  } catch (cause) {
    const form = typeof input === "string"
      ? "one PEM X.509 certificate"
      : "a DER X.509 certificate";
    throw new AuthError(`Invalid ${what}: not ${form}`, { cause });
  }
}

function millis(time: PolicyTime): number {
  return typeof time === "number" ? time : time.getTime();
}

/** The one reason a certificate fails the policy, or undefined. */
type Reason = string | undefined;

function windowReason(cert: x509.X509Certificate, now: number): Reason {
  if (!(now >= cert.notBefore.getTime())) {
    return `it is not valid before ${cert.notBefore.toISOString()}`;
  }
  if (!(now <= cert.notAfter.getTime())) return `it expired at ${cert.notAfter.toISOString()}`;
  return undefined;
}

function extensionsReason(cert: x509.X509Certificate): Reason {
  const seen = new Set<string>();
  for (const extension of factsOf(cert).extensions) {
    // A second copy could say something else than the one we read (RFC 5280 §4.2).
    if (seen.has(extension.id)) return `it has extension ${extension.id} more than once`;
    seen.add(extension.id);
    if (extension.critical && !KNOWN_CRITICAL.has(extension.id)) {
      return `it has an unknown critical extension ${extension.id}`;
    }
  }
  return undefined;
}

function keyReason(cert: x509.X509Certificate): Reason {
  return factsOf(cert).p256 ? undefined : "its key is not ECDSA P-256";
}

function keyUsageReason(cert: x509.X509Certificate, flag: x509.KeyUsageFlags): Reason {
  const usage = factsOf(cert).keyUsage;
  const name = x509.KeyUsageFlags[flag];
  if (usage === undefined) return `it has no key usage extension (${name} is required)`;
  return (usage & flag) === flag ? undefined : `its key usage does not include ${name}`;
}

function caReason(ca: x509.X509Certificate, now: number): Reason {
  if (ca.issuer !== ca.subject) return "it is not self-issued (its issuer is not its subject)";
  if (!factsOf(ca).isCa) {
    return "it is not a CA (basic constraints do not set the CA flag)";
  }
  return windowReason(ca, now) ?? keyUsageReason(ca, x509.KeyUsageFlags.keyCertSign) ??
    extensionsReason(ca) ?? keyReason(ca);
}

function partyReason(cert: x509.X509Certificate, use: PartyUse, now: number): Reason {
  if (factsOf(cert).isCa) {
    return "it is a CA certificate, not a party's";
  }
  const windowed = windowReason(cert, now);
  if (windowed) return windowed;
  const usage = keyUsageReason(cert, x509.KeyUsageFlags.digitalSignature);
  if (usage) return usage;
  const eku = factsOf(cert).extendedKeyUsage;
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

/**
 * Checks `cert` against sumshare's certificate policy for `use` at time
 * `options.now`, and returns what it accepted; throws an
 * {@linkcode AuthError} with a one-line reason otherwise.
 *
 * Every certificate: inside its validity window; no extension twice; no
 * critical extension but basic constraints, key usage, extended key usage,
 * subject alternative names and key identifiers; an ECDSA P-256 key.
 * The CA besides: self-issued, the CA flag, keyCertSign. A party besides:
 * not a CA, digitalSignature, the extended key usage its use needs, issued
 * (by name) by a CA that passes the policy at the same time, and exactly one
 * CN, equal to `options.name`. The CA's signature is checked by
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
    const ca = parseCertificate(cert, "CA certificate");
    const reason = caReason(ca, now);
    if (reason) throw new AuthError(`Invalid CA certificate: ${reason}`);
    return {
      use,
      certificate: ca,
      subject: ca.subject,
      notBefore: ca.notBefore,
      notAfter: ca.notAfter,
    };
  }
  if (!(use in REQUIRED_EKU)) throw new TypeError(`Unknown certificate use ${String(use)}`);
  if (!("ca" in options) || typeof options.name !== "string") {
    throw new TypeError("A party certificate is checked against a CA and a name");
  }
  const { name } = options;
  const ca = checkCertificatePolicy(options.ca, "ca", { now }).certificate;
  const party = parseCertificate(cert, `certificate for ${JSON.stringify(name)}`);
  if (party.issuer !== ca.subject) throw notIssued(name);
  const cns = party.subjectName.getField("CN");
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
  return {
    use,
    certificate: party,
    name,
    ca,
    notBefore: party.notBefore,
    notAfter: party.notAfter,
  };
}

function notIssued(name: string | undefined): AuthError {
  const whose = name === undefined ? "" : ` presented for ${JSON.stringify(name)}`;
  return new AuthError(`Certificate${whose} is not issued by the consortium CA`);
}

/** The CA's key, imported into Web Crypto once per parsed CA rather than per certificate. */
const caKeys = new WeakMap<x509.X509Certificate, Promise<CryptoKey>>();

function caVerifyKey(ca: x509.X509Certificate): Promise<CryptoKey> {
  let key = caKeys.get(ca);
  if (!key) {
    key = ca.publicKey.export(ECDSA_P256, ["verify"], crypto);
    key.catch(() => caKeys.delete(ca));
    caKeys.set(ca, key);
  }
  return key;
}

/**
 * Checks that `cert` is issued by `ca`: the issuer name is the CA's subject
 * and the CA's ECDSA P-256 signature over it verifies. Throws an
 * {@linkcode AuthError} naming `name` (the party it was presented for)
 * otherwise. The policy is {@linkcode checkCertificatePolicy}'s; this is only
 * the signature.
 */
export async function verifyIssuedBy(
  cert: CertificateInput,
  ca: CertificateInput,
  { name }: { name?: string } = {},
): Promise<void> {
  const party = parseCertificate(cert);
  const issuer = parseCertificate(ca, "CA certificate");
  let signed = false;
  try {
    signed = party.issuer === issuer.subject &&
      await party.verify({ publicKey: await caVerifyKey(issuer), signatureOnly: true }, crypto);
  } catch {
    signed = false;
  }
  if (!signed) throw notIssued(name);
}
