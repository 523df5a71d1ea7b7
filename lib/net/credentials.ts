/**
 * TLS credentials checked before a listener or connection uses them.
 *
 * Measured in Deno 2.9.6: `node:tls` takes a certificate or key that is not
 * PEM, or a key of another certificate, without complaint, listens, and then
 * fails every handshake with "unsupported protocol"; clients see only an
 * unexpected end of file. Checking the PEM here turns that into one sentence
 * at start-up. Only the form is checked (one certificate, a P-256 PKCS#8 key
 * that belongs to it, a CA that is a CA); whether a certificate is
 * acceptable is the certificate policy's business (lib/certpolicy.ts).
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { TransportError } from "./errors.ts";

x509.cryptoProvider.set(crypto);

/** PEM texts of a party's TLS credentials. */
export interface Credentials {
  /** The consortium CA certificate. */
  ca: string;
  /** This party's certificate. */
  cert: string;
  /** This party's private key (PKCS#8). */
  key: string;
}

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

function blocks(pem: string, type: string): x509.PemStruct[] {
  try {
    return x509.PemConverter.decodeWithHeaders(pem).filter((block) => block.type === type);
  } catch {
    return [];
  }
}

function certificate(pem: string): x509.X509Certificate | undefined {
  const found = blocks(pem, "CERTIFICATE");
  if (found.length !== 1) return undefined;
  try {
    return new x509.X509Certificate(found[0]!.rawData);
  } catch {
    return undefined;
  }
}

/**
 * Throws {@linkcode TransportError} (reason `"credentials"`) saying which of
 * `credentials` cannot be used, for the sentence "Cannot ACTION: …".
 */
export async function checkCredentials(credentials: Credentials, action: string): Promise<void> {
  const fail = (detail: string): never => {
    throw new TransportError(`Cannot ${action}: ${detail}`, { reason: "credentials" });
  };
  const ca = certificate(credentials.ca);
  if (!ca) fail("the consortium CA certificate is not one PEM certificate (check the CA file)");
  if (!ca!.getExtension(x509.BasicConstraintsExtension)?.ca) {
    fail(
      "the consortium CA certificate is not a CA (check that the CA file is ca.crt, not a party's)",
    );
  }
  const cert = certificate(credentials.cert);
  if (!cert) {
    fail("this party's certificate is not one PEM certificate (check the certificate file)");
  }
  const keyBlocks = blocks(credentials.key, "PRIVATE KEY");
  let key: CryptoKey | undefined;
  if (keyBlocks.length === 1) {
    key = await crypto.subtle.importKey("pkcs8", keyBlocks[0]!.rawData, P256, true, ["sign"])
      .catch(() => undefined);
  }
  if (!key) {
    fail("this party's private key is not one PEM PKCS#8 ECDSA P-256 key (check the key file)");
  }
  const [own, certified] = await Promise.all([
    crypto.subtle.exportKey("jwk", key!),
    cert!.publicKey.export(P256, ["verify"], crypto)
      .then((k) => crypto.subtle.exportKey("jwk", k))
      .catch(() => undefined),
  ]);
  if (!certified || own.x !== certified.x || own.y !== certified.y) {
    fail(
      "this party's private key does not belong to its certificate (check that both files are the same party's)",
    );
  }
}
