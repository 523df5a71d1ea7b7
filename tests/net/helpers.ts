/**
 * Helpers for the lib/net tests: a real consortium from lib/pki.ts, a
 * certificate policy for `authorize`, a hospital listener on 127.0.0.1:0,
 * peers connecting to it, and deadlines that clean up after themselves.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { AuthError } from "../../lib/errors.ts";
import { isPartyName } from "../../lib/names.ts";
import { type Consortium, createConsortium } from "../../lib/pki.ts";
import { connect, type ConnectOptions } from "../../lib/net/client.ts";
import type { Connection } from "../../lib/net/connection.ts";
import type { TransportError } from "../../lib/net/errors.ts";
import { listen, type Server, type ServerOptions } from "../../lib/net/server.ts";

x509.cryptoProvider.set(crypto);

/** The consortium every test shares, and a foreign one with the same names. */
export interface Pki {
  home: Consortium;
  foreign: Consortium;
}

let pki: Promise<Pki> | undefined;

/** Made once per test file: key generation is the slow part. */
export function testPki(): Promise<Pki> {
  pki ??= (async () => ({
    home: await createConsortium(["hospital", "alice", "bob", "carol"]),
    foreign: await createConsortium(["hospital", "alice"]),
  }))();
  return pki;
}

/** A party's PEM pair from a consortium. */
export function party(consortium: Consortium, name: string): { cert: string; key: string } {
  const pair = consortium.parties.get(name);
  if (!pair) throw new Error(`no party ${name} in the test consortium`);
  return pair;
}

/**
 * A stand-in for the project's certificate policy (lib/certpolicy.ts):
 * signed by the CA, not itself a CA, for TLS clients, one valid CN = the
 * party's name. Kept here so these tests do not depend on a file in flux.
 */
export function testAuthorize(caPem: string): (der: Uint8Array) => Promise<string> {
  const ca = new x509.X509Certificate(caPem);
  return async (der) => {
    const cert = new x509.X509Certificate(der as Uint8Array<ArrayBuffer>);
    if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) {
      throw new AuthError("the certificate is a CA certificate, not a party's");
    }
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku?.usages.includes(x509.ExtendedKeyUsage.clientAuth)) {
      throw new AuthError("the certificate is not for TLS clients");
    }
    if (!(await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }))) {
      throw new AuthError("the certificate is not issued by the consortium CA");
    }
    const cn = cert.subjectName.getField("CN");
    if (cn.length !== 1 || !isPartyName(cn[0]!)) {
      throw new AuthError("the certificate has no single valid party name");
    }
    return cn[0]!;
  };
}

/** What a test server reported refusing. */
export interface Refusal {
  error: TransportError;
  remote: string;
}

/** A hospital listener for tests, with its refusals recorded. */
export interface TestServer {
  server: Server;
  refusals: Refusal[];
  /** Resolves at the next refusal (or one already recorded after `from`). */
  nextRefusal(from: number, signal: AbortSignal): Promise<Refusal>;
}

/** Listens on 127.0.0.1:0 as the hospital of `pki.home`. */
export async function startServer(
  pki: Pki,
  options: Partial<ServerOptions> = {},
): Promise<TestServer> {
  const refusals: Refusal[] = [];
  let waiter: (() => void) | undefined;
  const hospital = party(pki.home, "hospital");
  const server = await listen({
    hostname: "127.0.0.1",
    port: 0,
    ca: pki.home.ca.cert,
    cert: hospital.cert,
    key: hospital.key,
    authorize: testAuthorize(pki.home.ca.cert),
    ...options,
    onRefused(error, remote) {
      refusals.push({ error, remote });
      options.onRefused?.(error, remote);
      const wake = waiter;
      waiter = undefined;
      wake?.();
    },
  });
  return {
    server,
    refusals,
    async nextRefusal(from, signal) {
      while (refusals.length <= from) {
        signal.throwIfAborted();
        await new Promise<void>((resolve, reject) => {
          waiter = resolve;
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      }
      return refusals[from]!;
    },
  };
}

/** Connects to `server` as `name` of `consortium` (default: the home consortium). */
export async function connectAs(
  pki: Pki,
  server: Server,
  name: string,
  signal: AbortSignal,
  options: Partial<ConnectOptions> & { consortium?: Consortium } = {},
): Promise<Connection> {
  const { consortium = pki.home, ...rest } = options;
  const pair = party(consortium, name);
  return await connect({
    hostname: "127.0.0.1",
    port: server.port,
    ca: pki.home.ca.cert,
    cert: pair.cert,
    key: pair.key,
    ...rest,
  }, signal);
}

/**
 * A deadline for one test: `signal` aborts after `ms`; dispose to clear the
 * timer (so no timer outlives the test).
 */
export function deadline(ms: number): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`test deadline of ${ms} ms passed`)),
    ms,
  );
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      clearTimeout(timer);
    },
  };
}

/** Bytes of `length` with a recognisable pattern derived from `seed`. */
export function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Whether two byte arrays are equal (faster than deepEqual for megabytes). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Descriptors this process holds (Linux), for checking sockets are released.
 * Listed by `ls`: reading /proc/self/fd directly needs --allow-all.
 */
export async function openDescriptors(): Promise<number> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${Deno.pid}/fd`] }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line !== "").length;
}

/** Opens `count` plain TCP connections to `port` (never starting TLS). */
export async function openIdle(port: number, count: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  // In batches: a burst of hundreds of SYNs can overflow the listen backlog.
  for (let i = 0; i < count; i += 50) {
    const batch = Math.min(50, count - i);
    conns.push(
      ...await Promise.all(
        Array.from({ length: batch }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      ),
    );
  }
  return conns;
}

/**
 * Resolves when the server closes `conn` (read returns end or an error),
 * with the time it took from `since`; gives up at `signal`.
 */
export async function closedByServer(
  conn: Deno.Conn,
  since: number,
  signal: AbortSignal,
): Promise<number> {
  const buffer = new Uint8Array(256);
  const onAbort = () => closeQuietly(conn);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
    }
    if (signal.aborted) throw new Error("the server did not close the connection in time");
    return performance.now() - since;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** Options for {@linkcode issueCertificate}. */
export interface IssueOptions {
  /** Extended key usage OIDs; default clientAuth and serverAuth. */
  usages?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Host names for the SAN; default 127.0.0.1. */
  ips?: string[];
  dns?: string[];
}

/**
 * Issues a certificate for `name` from `consortium`'s CA with the usages and
 * validity window given: for certificates `sumshare certs` never makes
 * (codeSigning only, expired).
 */
export async function issueCertificate(
  consortium: Consortium,
  name: string,
  options: IssueOptions = {},
): Promise<{ cert: string; key: string }> {
  const ca = new x509.X509Certificate(consortium.ca.cert);
  const caKey = await crypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(consortium.ca.key),
    ECDSA_P256,
    false,
    ["sign"],
  );
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "0a" +
      Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"))
        .join(""),
    subject: `CN=${name}`,
    issuer: ca.subject,
    notBefore: options.notBefore ?? new Date(now - 3_600_000),
    notAfter: options.notAfter ?? new Date(now + 86_400_000),
    signingAlgorithm: ECDSA_P256,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        options.usages ?? [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth],
      ),
      new x509.SubjectAlternativeNameExtension([
        ...(options.ips ?? ["127.0.0.1"]).map((value) => ({ type: "ip" as const, value })),
        ...(options.dns ?? []).map((value) => ({ type: "dns" as const, value })),
      ]),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { cert: cert.toString("pem") + "\n", key: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}

/** The OID of the codeSigning extended key usage. */
export const CODE_SIGNING = "1.3.6.1.5.5.7.3.3";

/** A peer's connection and the hospital's side of it; disposing closes both. */
export interface Pair extends Disposable {
  client: Connection;
  accepted: Connection;
}

/** Connects `name` to `server` and accepts it there. */
export async function pairUp(
  pki: Pki,
  server: Server,
  name: string,
  signal: AbortSignal,
  options: Partial<ConnectOptions> & { consortium?: Consortium } = {},
): Promise<Pair> {
  const [client, accepted] = await Promise.allSettled([
    connectAs(pki, server, name, signal, options),
    server.accept(signal),
  ]);
  if (client.status === "rejected" || accepted.status === "rejected") {
    if (client.status === "fulfilled") client.value.close();
    if (accepted.status === "fulfilled") accepted.value.close();
    throw client.status === "rejected" ? client.reason : (accepted as PromiseRejectedResult).reason;
  }
  return {
    client: client.value,
    accepted: accepted.value,
    [Symbol.dispose]() {
      client.value.close();
      accepted.value.close();
    },
  };
}

/** Waits for `promise`, failing when `signal` aborts (every wait in these tests has a deadline). */
export function within<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** One echo exchange between an honest peer and the hospital. */
export async function honestExchange(
  pki: Pki,
  server: TestServer,
  name: string,
  signal: AbortSignal,
  rounds = 1,
): Promise<void> {
  using pair = await pairUp(pki, server.server, name, signal);
  for (let i = 0; i < rounds; i++) {
    await pair.client.write(new Uint8Array([i & 0xff, 1]), signal);
    const got = await pair.accepted.readFrame(signal);
    await pair.accepted.write(got, signal);
    assert.deepEqual(await pair.client.readFrame(signal), new Uint8Array([i & 0xff, 1]));
    if (i === 0) {
      pair.accepted.raiseLimit();
      pair.client.raiseLimit();
    }
  }
}
