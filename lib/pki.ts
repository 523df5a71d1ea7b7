/**
 * `sumshare certs`: a consortium PKI. One CA, and for every party its own
 * ECDSA P-256 key and a certificate with CN = party name and SANs = the hosts
 * where it listens. Everything is made with Web Crypto and @peculiar/x509.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { join } from "node:path";
import { toHex } from "./encoding.ts";
import { checkPartyName } from "./names.ts";

x509.cryptoProvider.set(crypto);

/** The one signature scheme sumshare uses everywhere. */
export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

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

/** Generates a CA and one certificate per party, in memory. */
export async function createConsortium(
  names: string[],
  options: CreateConsortiumOptions = {},
): Promise<Consortium> {
  const { hosts = ["localhost", "127.0.0.1"], days = 365 } = options;
  if (names.length === 0) throw new PkiError("Cannot create PKI: no party names given");
  for (const name of names) checkPartyName(name);
  if (new Set(names).size !== names.length) {
    throw new PkiError("Cannot create PKI: a party name is repeated");
  }
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    throw new PkiError("Cannot create PKI: --days must be a whole number from 1 to 3650");
  }
  const altNames = hosts.map(subjectAltName);
  // Backdate a little so a peer whose clock is slightly behind still accepts.
  const notBefore = new Date(Date.now() - 5 * 60_000);
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

  const parties = new Map<string, PemPair>();
  for (const name of names) {
    const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${name}`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ECDSA_P256,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        new x509.SubjectAlternativeNameExtension(altNames),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    parties.set(name, {
      cert: cert.toString("pem") + "\n",
      key: await exportKeyPem(keys.privateKey) + "\n",
    });
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
  ];
  for (const [name, pair] of consortium.parties) {
    files.push([`${name}.crt`, pair.cert, false], [`${name}.key`, pair.key, true]);
  }
  await Deno.mkdir(dir, { recursive: true });
  if (!options.force) {
    const existing: string[] = [];
    for (const [file] of files) {
      try {
        await Deno.lstat(join(dir, file));
        existing.push(file);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    if (existing.length > 0) {
      throw new PkiError(
        `Cannot write PKI: ${existing.join(", ")} already exist in ${dir} (use --force to replace)`,
      );
    }
  }
  const written: string[] = [];
  for (const [file, text, secret] of files) {
    const path = join(dir, file);
    // Remove first so a replaced key is created fresh with mode 0600 rather
    // than inheriting the old file's mode.
    if (options.force) await Deno.remove(path).catch(() => {});
    await Deno.writeTextFile(path, text, { mode: secret ? 0o600 : 0o644, createNew: true });
    if (secret && Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
    written.push(path);
  }
  return written;
}
