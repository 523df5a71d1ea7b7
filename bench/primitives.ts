/**
 * What one neighbour costs a peer, primitive by primitive, measured in this
 * process with the protocol's own code where it has one: the certificate
 * policy (strict DER read and checks), the whole certificate check (with the
 * CA signature), its re-check on a cache hit, ECDSA P-256 verification of a
 * signature, ECDH P-256 and the HKDF after it, importing a peer's public
 * key; and, to pick alternatives with numbers, Ed25519, X25519,
 * node:crypto's X509Certificate, and `@peculiar/x509` doing the parse, CA
 * signature and key export the check used to make with it.
 *
 * `deno run -A bench/primitives.ts` prints one line per primitive (median
 * of several batches, CPU milliseconds per call); bench.ts uses
 * {@linkcode measurePrimitives} for the simulate rows' limit.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import process from "node:process";
import * as x509 from "@peculiar/x509";
import { checkCertificatePolicy, ECDSA_P256 } from "../lib/certpolicy.ts";
import { importPublicKey, pairwiseSeed, sharedSecret } from "../lib/crypto/agreement.ts";
import { sign, verify } from "../lib/crypto/signing.ts";
import { loadCaCertificate, verifyPartyCertificate } from "../lib/identity.ts";
import { createConsortium } from "../lib/pki.ts";

/** Milliseconds per call of each primitive. */
export interface PrimitiveCosts {
  /** Read a party certificate (PEM, strict DER) and apply the policy. */
  certificatePolicy: number;
  /**
   * The whole check a peer makes of a neighbour's certificate, as the round
   * makes it (`verifyPartyCertificate` on a certificate it has not seen):
   * policy, CA signature, key import.
   */
  certificateCheck: number;
  /**
   * `verifyPartyCertificate` again on a certificate it accepted before (a
   * `--serve` process, the next round): the policy only.
   */
  certificateRecheck: number;
  /**
   * For comparison, `@peculiar/x509` doing what the check used to do with
   * it: parse, verify the CA signature, export the key (without the policy).
   */
  certificateCheckPeculiar: number;
  ecdsaVerify: number;
  ecdhDerive: number;
  /** ECDH plus the HKDF that makes the pairwise seed. */
  pairwiseSeed: number;
  importPublicKey: number;
  ed25519Verify: number;
  x25519Derive: number;
  /** node:crypto X509Certificate: parse and verify the CA signature. */
  nodeX509: number;
}

/**
 * CPU milliseconds per call (this process's user + system time, so that other
 * work on a shared machine does not count), the median of five batches.
 */
async function perCall(
  calls: number,
  body: (i: number) => Promise<unknown> | unknown,
): Promise<number> {
  await body(-1); // warm-up
  const batches: number[] = [];
  for (let b = 0; b < 5; b++) {
    const started = process.cpuUsage();
    for (let i = 0; i < calls; i++) await body(b * calls + i);
    const { user, system } = process.cpuUsage(started);
    batches.push((user + system) / 1000 / calls);
  }
  return batches.sort((a, b) => a - b)[2]!;
}

/** Measures every primitive with `calls` calls per batch. */
export async function measurePrimitives(calls = 200): Promise<PrimitiveCosts> {
  // A certificate per call: identity.ts caches each certificate's check per
  // CA, and a peer checks each neighbour's certificate once.
  const names = Array.from({ length: 5 * calls + 1 }, (_, i) => `p${i}`);
  const consortium = await createConsortium(names);
  const caPem = consortium.ca.cert;
  const pems = names.map((name) => consortium.parties.get(name)!.cert);
  const certPem = pems[0]!;
  const ca = await loadCaCertificate(caPem);
  const now = Date.now();

  // Every key is imported, as the protocol's keys are (from certificates and
  // JOIN messages): in Deno 2.9.6 a public key straight from generateKey costs
  // twice as much per use (measured: ECDSA verify 0.67 against 0.34 ms, ECDH
  // 0.60 against 0.30 ms), which is not what a peer pays.
  const ecdsa = { name: "ECDSA", namedCurve: "P-256" } as const;
  const signer = await crypto.subtle.generateKey(ecdsa, true, ["sign", "verify"]);
  const verifier = await crypto.subtle.importKey(
    "spki",
    await crypto.subtle.exportKey("spki", signer.publicKey),
    ecdsa,
    false,
    ["verify"],
  );
  const fields = [new Uint8Array(32), new Uint8Array(65), new Uint8Array(65)];
  const signature = await sign(signer.privateKey, "join", fields);

  const ecdh = { name: "ECDH", namedCurve: "P-256" } as const;
  const a = await crypto.subtle.generateKey(ecdh, true, ["deriveBits"]) as CryptoKeyPair;
  const b = await crypto.subtle.generateKey(ecdh, true, ["deriveBits"]) as CryptoKeyPair;
  const rawB = new Uint8Array(await crypto.subtle.exportKey("raw", b.publicKey));
  const other = await importPublicKey(rawB);
  const session = new Uint8Array(32);

  const ed = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
  const edPublic = await crypto.subtle.importKey(
    "raw",
    await crypto.subtle.exportKey("raw", ed.publicKey),
    "Ed25519",
    false,
    ["verify"],
  );
  const message = new Uint8Array(200);
  const edSignature = await crypto.subtle.sign("Ed25519", ed.privateKey, message);
  const x = await crypto.subtle.generateKey("X25519", true, ["deriveBits"]) as CryptoKeyPair;
  const y = await crypto.subtle.generateKey("X25519", true, ["deriveBits"]) as CryptoKeyPair;
  const yPublic = await crypto.subtle.importKey(
    "raw",
    await crypto.subtle.exportKey("raw", y.publicKey),
    "X25519",
    false,
    [],
  );

  const nodeCa = new X509Certificate(caPem);
  const peculiarCaKey = await ca.publicKey.export(ECDSA_P256, ["verify"], crypto);
  return {
    certificatePolicy: await perCall(
      calls,
      () => checkCertificatePolicy(certPem, "peer", { ca, name: "p0", now }),
    ),
    certificateCheck: await perCall(
      calls,
      (i) => verifyPartyCertificate(pems[i + 1]!, ca, names[i + 1]!, { use: "peer" }),
    ),
    // The same certificates again, each accepted once above.
    certificateRecheck: await perCall(
      calls,
      (i) => verifyPartyCertificate(pems[i + 1]!, ca, names[i + 1]!, { use: "peer" }),
    ),
    certificateCheckPeculiar: await perCall(calls, async (i) => {
      const cert = new x509.X509Certificate(pems[i + 1]!);
      if (!await cert.verify({ publicKey: peculiarCaKey, signatureOnly: true }, crypto)) {
        throw new Error("Cannot measure: the CA signature does not verify");
      }
      return await cert.publicKey.export(ECDSA_P256, ["verify"], crypto);
    }),
    ecdsaVerify: await perCall(calls, () => verify(verifier, signature, "join", fields)),
    ecdhDerive: await perCall(calls, () => sharedSecret(a.privateKey, other)),
    pairwiseSeed: await perCall(
      calls,
      // A session per call: agreement.ts remembers each pair's seed per session, and a
      // peer derives each seed once, so a repeated call would measure the memo.
      (i) => {
        const fresh = Uint8Array.from(session);
        new DataView(fresh.buffer).setInt32(0, i);
        return pairwiseSeed(a.privateKey, other, fresh, "alice", "bob");
      },
    ),
    importPublicKey: await perCall(calls, () => importPublicKey(rawB)),
    ed25519Verify: await perCall(
      calls,
      () => crypto.subtle.verify("Ed25519", edPublic, edSignature, message),
    ),
    x25519Derive: await perCall(
      calls,
      () => crypto.subtle.deriveBits({ name: "X25519", public: yPublic }, x.privateKey, 256),
    ),
    nodeX509: await perCall(calls, () => new X509Certificate(certPem).verify(nodeCa.publicKey)),
  };
}

/**
 * The least CPU a peer spends per neighbour in a complete-graph round, by
 * the spec: one certificate check (policy and CA signature), two signature
 * checks (its JOIN and its CONFIRM), two public keys imported, and one
 * pairwise seed; threshold rounds add a sealing ECDH.
 */
export function perNeighbourMs(costs: PrimitiveCosts, threshold: boolean): number {
  return costs.certificateCheck + 2 * costs.ecdsaVerify +
    2 * costs.importPublicKey + costs.pairwiseSeed + (threshold ? costs.ecdhDerive : 0);
}

if (import.meta.main) {
  const costs = await measurePrimitives();
  for (const [name, ms] of Object.entries(costs)) {
    console.log(`${name.padEnd(26)} ${ms.toFixed(3)} ms`);
  }
  console.log(
    `${"per neighbour, n-of-n".padEnd(26)} ${perNeighbourMs(costs, false).toFixed(3)} ms`,
  );
  console.log(`${"per neighbour, thresh".padEnd(26)} ${perNeighbourMs(costs, true).toFixed(3)} ms`);
}
