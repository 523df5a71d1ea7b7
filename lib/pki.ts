/**
 * `sumshare certs`: a consortium PKI. One CA, and for every party its own
 * ECDSA P-256 key and a certificate with CN = party name and SANs = the hosts
 * where it listens. Everything is made with Web Crypto and @peculiar/x509.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { dirname, join } from "node:path";
import { checkCertificatePolicy, ECDSA_P256, verifyIssuedBy } from "./certpolicy.ts";
import { toHex } from "./encoding.ts";
import { checkPartyName } from "./names.ts";
import {
  certificateFingerprint,
  parseRevocationList,
  REVOCATION_FILE,
  REVOCATION_PURPOSE,
  revocationFields,
  type RevocationList,
  type RevokedParty,
  signTranscript,
} from "./identity.ts";
import { toBase64 } from "./encoding.ts";

x509.cryptoProvider.set(crypto);

export { ECDSA_P256 } from "./certpolicy.ts";

/** Raised for a PKI that cannot be made or written. */
export class PkiError extends Error {
  override name = "PkiError";
}

/** PEM text of one certificate and its private key. */
export interface PemPair {
  cert: string;
  key: string;
}

/** A generated consortium: the CA and one key pair per party. */
export interface Consortium {
  ca: PemPair;
  parties: Map<string, PemPair>;
}

/** Options for {@linkcode createConsortium}. */
export interface CreateConsortiumOptions {
  /** Host names and IP addresses to put in every party certificate's SANs. */
  hosts?: string[];
  /** Validity in days. */
  days?: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function subjectAltName(host: string): x509.JsonGeneralName {
  if (IPV4.test(host) || (host.includes(":") && /^[0-9a-fA-F:.]+$/.test(host))) {
    return { type: "ip", value: host };
  }
  if (DNS_NAME.test(host)) return { type: "dns", value: host };
  throw new PkiError(`Invalid host ${JSON.stringify(host)}: expected a DNS name or an IP address`);
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // a positive INTEGER
  return toHex(bytes);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
}

/** A CA that can sign: its certificate and private key. */
interface SigningCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

/** The validity window and SANs every party certificate of one run gets. */
interface PartyProfile {
  altNames: x509.JsonGeneralName[];
  notBefore: Date;
  notAfter: Date;
}

function checkRequest(names: string[], days: number, what: string): void {
  if (names.length === 0) throw new PkiError(`Cannot ${what}: no party names given`);
  for (const name of names) checkPartyName(name);
  if (new Set(names).size !== names.length) {
    throw new PkiError(`Cannot ${what}: a party name is repeated`);
  }
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    throw new PkiError(`Cannot ${what}: --days must be a whole number from 1 to 3650`);
  }
}

/**
 * Issues one party certificate. Every party gets serverAuth and clientAuth:
 * in the current protocol each party both listens and connects (see
 * `PartyUse` in certpolicy.ts).
 */
async function issueParty(ca: SigningCa, name: string, profile: PartyProfile): Promise<PemPair> {
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${name}`,
    issuer: ca.cert.subject,
    notBefore: profile.notBefore,
    notAfter: profile.notAfter,
    signingAlgorithm: ECDSA_P256,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(profile.altNames),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return {
    cert: cert.toString("pem") + "\n",
    key: await exportKeyPem(keys.privateKey) + "\n",
  };
}

/** Backdated a little so a peer whose clock is slightly behind still accepts. */
const BACKDATE_MS = 5 * 60_000;

/** Generates a CA and one certificate per party, in memory. */
export async function createConsortium(
  names: string[],
  options: CreateConsortiumOptions = {},
): Promise<Consortium> {
  const { hosts = ["localhost", "127.0.0.1"], days = 365 } = options;
  checkRequest(names, days, "create PKI");
  const altNames = hosts.map(subjectAltName);
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const notAfter = new Date(Date.now() + days * 86_400_000);

  const caKeys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=sumshare consortium CA",
    notBefore,
    notAfter,
    signingAlgorithm: ECDSA_P256,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const ca = { cert: caCert, key: caKeys.privateKey };
  const parties = new Map<string, PemPair>();
  for (const name of names) {
    parties.set(name, await issueParty(ca, name, { altNames, notBefore, notAfter }));
  }
  return {
    ca: { cert: caCert.toString("pem") + "\n", key: await exportKeyPem(caKeys.privateKey) + "\n" },
    parties,
  };
}

/** Options for {@linkcode writeConsortium}. */
export interface WriteConsortiumOptions {
  /** Overwrite existing files. */
  force?: boolean;
}

/** Which of `files` exist in `dir` (a dangling symlink counts). */
async function existingFiles(dir: string, files: string[]): Promise<string[]> {
  const existing: string[] = [];
  for (const file of files) {
    try {
      await Deno.lstat(join(dir, file));
      existing.push(file);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return existing;
}

/** Creates `path`; a key is readable by the owner only. Never overwrites. */
async function createFile(path: string, text: string, secret: boolean): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: secret ? 0o600 : 0o644, createNew: true });
  // The mode given at creation is reduced by the umask; a key must be exactly 0600.
  if (secret && Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
}

function partyFiles(parties: Map<string, PemPair>): [string, string, boolean][] {
  const files: [string, string, boolean][] = [];
  for (const [name, pair] of parties) {
    files.push([`${name}.crt`, pair.cert, false], [`${name}.key`, pair.key, true]);
  }
  return files;
}

/**
 * Creates `dir` if it does not exist (its parents as usual), the folder
 * itself 0700: it holds the CA's key and the trust root, and whoever can
 * write it could swap `ca.crt` or a key before it is copied out (review 17,
 * F12: it was 0775 under umask 002). The umask can only take bits away, so
 * the mode is set again for one that takes the owner's. An existing folder
 * keeps its mode: it may be shared (`--out /tmp`), and is the user's.
 */
async function createPrivateDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return;
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(dirname(dir), { recursive: true });
    await Deno.mkdir(dir, { mode: 0o700 });
  }
  await Deno.chmod(dir, 0o700);
}

/**
 * Writes `ca.crt`, `ca.key`, `NAME.crt` and `NAME.key` into `dir`. Keys are
 * created readable by the owner only. Without `force`, refuses before writing
 * anything if any of the files exists.
 */
export async function writeConsortium(
  dir: string,
  consortium: Consortium,
  options: WriteConsortiumOptions = {},
): Promise<string[]> {
  const files: [string, string, boolean][] = [
    ["ca.crt", consortium.ca.cert, false],
    ["ca.key", consortium.ca.key, true],
    ...partyFiles(consortium.parties),
  ];
  await createPrivateDir(dir);
  if (!options.force) {
    const existing = await existingFiles(dir, files.map(([file]) => file));
    if (existing.length > 0) {
      throw new PkiError(
        `Cannot write PKI: ${existing.join(", ")} already exist in ${dir} ` +
          `(use --add to issue parties from its CA, or --force to replace it with a new CA)`,
      );
    }
  }
  const written: string[] = [];
  for (const [file, text, secret] of files) {
    const path = join(dir, file);
    // Remove first so a replaced key is created fresh with mode 0600 rather
    // than inheriting the old file's mode.
    if (options.force) await Deno.remove(path).catch(() => {});
    await createFile(path, text, secret);
    written.push(path);
  }
  return written;
}

/** Raised by {@linkcode addParties} for a name whose files already exist. */
export class PartyExistsError extends PkiError {
  override name = "PartyExistsError";
}

/** Options for {@linkcode addParties}. */
export interface AddPartiesOptions {
  /** Host names and IP addresses to put in every new certificate's SANs. */
  hosts?: string[];
  /** Validity in days; cut to the CA's own expiry. */
  days?: number;
}

/** What {@linkcode addParties} wrote. */
export interface AddedParties {
  /** The paths written. */
  written: string[];
  /** When the new certificates expire. */
  notAfter: Date;
  /** Whether `notAfter` was cut to the CA's expiry. */
  cutToCa: boolean;
}

async function readCaFile(dir: string, file: string, what: string): Promise<string> {
  const path = join(dir, file);
  try {
    return await Deno.readTextFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new PkiError(
        `Cannot ${what}: there is no CA in ${dir} (${file} not found); ` +
          `make one with sumshare certs --names`,
        { cause },
      );
    }
    throw new PkiError(`Cannot ${what}: cannot read ${path}`, { cause });
  }
}

/** Loads `dir/ca.crt` and `dir/ca.key`: the CA must pass the policy now and the key match it. */
async function loadSigningCa(dir: string, now: number, what = "add parties"): Promise<SigningCa> {
  const certPem = await readCaFile(dir, "ca.crt", what);
  const keyPem = await readCaFile(dir, "ca.key", what);
  let cert: x509.X509Certificate;
  try {
    cert = checkCertificatePolicy(certPem, "ca", { now }).certificate;
    await verifyIssuedBy(cert, cert).catch((cause) => {
      throw new PkiError("Invalid CA certificate: it is not self-signed", { cause });
    });
  } catch (cause) {
    throw new PkiError(
      `Cannot ${what} with ${join(dir, "ca.crt")}: ${(cause as Error).message}`,
      { cause },
    );
  }
  let key: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(keyPem);
    key = await crypto.subtle.importKey("pkcs8", der, ECDSA_P256, false, ["sign"]);
  } catch (cause) {
    throw new PkiError(
      `Cannot ${what}: ${join(dir, "ca.key")} is not a PKCS#8 ECDSA P-256 key`,
      { cause },
    );
  }
  // A key that is not the CA's would issue certificates nobody accepts.
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const signature = await crypto.subtle.sign(ECDSA_P256, key, probe);
  const publicKey = await cert.publicKey.export(ECDSA_P256, ["verify"], crypto);
  if (!(await crypto.subtle.verify(ECDSA_P256, publicKey, signature, probe))) {
    throw new PkiError(
      `Cannot ${what}: ${join(dir, "ca.key")} does not match ${join(dir, "ca.crt")}`,
    );
  }
  return { cert, key };
}

/**
 * Issues certificates for new parties from the CA already in `dir`
 * (`ca.crt`, `ca.key`), so every existing party stays valid. Refuses, before
 * writing anything, a CA that fails the policy, a key that is not the CA's,
 * and names whose `.crt` or `.key` exist ({@linkcode PartyExistsError}).
 * Keys are created readable by the owner only.
 */
export async function addParties(
  dir: string,
  names: string[],
  options: AddPartiesOptions = {},
): Promise<AddedParties> {
  const { hosts = ["localhost", "127.0.0.1"], days = 365 } = options;
  checkRequest(names, days, "add parties");
  const altNames = hosts.map(subjectAltName);
  const now = Date.now();
  const ca = await loadSigningCa(dir, now);
  const existing = await existingFiles(dir, names.flatMap((n) => [`${n}.crt`, `${n}.key`]));
  if (existing.length > 0) {
    throw new PartyExistsError(
      `Cannot add parties: ${existing.join(", ")} already exist in ${dir}; ` +
        `a party that exists keeps its certificate`,
    );
  }
  const wanted = now + days * 86_400_000;
  // A certificate cannot outlive its CA usefully: the policy refuses both once the CA expires.
  const cutToCa = wanted > ca.cert.notAfter.getTime();
  const profile = {
    altNames,
    notBefore: new Date(Math.max(now - BACKDATE_MS, ca.cert.notBefore.getTime())),
    notAfter: cutToCa ? ca.cert.notAfter : new Date(wanted),
  };
  const parties = new Map<string, PemPair>();
  for (const name of names) parties.set(name, await issueParty(ca, name, profile));
  const written: string[] = [];
  for (const [file, text, secret] of partyFiles(parties)) {
    const path = join(dir, file);
    await createFile(path, text, secret);
    written.push(path);
  }
  return { written, notAfter: profile.notAfter, cutToCa };
}

/** What {@linkcode revokeParties} wrote. */
export interface RevokedParties {
  path: string;
  list: RevocationList;
  /** The names that were added (a name already listed is kept, not repeated). */
  added: RevokedParty[];
}

/**
 * Adds `names` to the CA's signed deny-list `dir/revoked.json` (the CA in
 * `dir`: ca.crt and ca.key), with each one's certificate serial and
 * fingerprint when `dir/NAME.crt` is there, and the next sequence number.
 * The list there must verify against the CA first: a list that does not is
 * never silently replaced. Written through a fresh file and a rename.
 */
export async function revokeParties(dir: string, names: string[]): Promise<RevokedParties> {
  for (const name of names) checkPartyName(name);
  const now = Date.now();
  const ca = await loadSigningCa(dir, now, "revoke");
  const path = join(dir, REVOCATION_FILE);
  let previous: RevocationList | undefined;
  try {
    previous = await parseRevocationList(await Deno.readTextFile(path), ca.cert, path);
  } catch (cause) {
    if (!(cause instanceof Deno.errors.NotFound)) {
      throw new PkiError(`Cannot revoke: ${(cause as Error).message}`, { cause });
    }
  }
  const time = new Date(now).toISOString();
  const entries = [...(previous?.entries ?? [])];
  const added: RevokedParty[] = [];
  for (const name of names) {
    if (entries.some((e) => e.name === name)) continue;
    let serial: string | null = null;
    let fingerprint: string | null = null;
    try {
      const cert = new x509.X509Certificate(await Deno.readTextFile(join(dir, `${name}.crt`)));
      serial = cert.serialNumber.toLowerCase();
      fingerprint = await certificateFingerprint(cert);
    } catch (cause) {
      // No certificate here: the name alone is refused, whatever certificate it shows.
      if (!(cause instanceof Deno.errors.NotFound)) {
        throw new PkiError(
          `Cannot revoke ${name}: ${join(dir, `${name}.crt`)} is not a certificate`,
          {
            cause,
          },
        );
      }
    }
    const entry = { name, serial, fingerprint, time };
    entries.push(entry);
    added.push(entry);
  }
  const list: RevocationList = { sequence: (previous?.sequence ?? 0) + 1, issued: time, entries };
  const caFingerprint = await certificateFingerprint(ca.cert);
  const fields = revocationFields(caFingerprint, list);
  const signature = await signTranscript(ca.key, REVOCATION_PURPOSE, fields);
  const text = JSON.stringify(
    {
      format: fields[0],
      ca: caFingerprint,
      sequence: list.sequence,
      issued: list.issued,
      revoked: entries,
      signature: toBase64(signature),
    },
    null,
    2,
  ) + "\n";
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temporary, text, { mode: 0o644, createNew: true });
    await Deno.rename(temporary, path);
  } catch (cause) {
    await Deno.remove(temporary).catch(() => {});
    throw new PkiError(`Cannot revoke: cannot write ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return { path, list, added };
}
