/**
 * The certificate policy: every certificate it must refuse, built here with
 * @peculiar/x509, is refused with a one-line reason by the pure function, at
 * load (`loadIdentity`, `addParties`) and at join (the hospital refuses the
 * connection and the honest round completes); a good one is accepted.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import {
  checkCertificatePolicy,
  ECDSA_P256,
  type PartyUse,
  verifyIssuedBy,
} from "../lib/certpolicy.ts";
import { AuthError } from "../lib/errors.ts";
import {
  type Identity,
  loadCaCertificate,
  loadIdentity,
  verifyPartyCertificate,
} from "../lib/identity.ts";
import { parseHostPort } from "../lib/names.ts";
import { addParties, PkiError } from "../lib/pki.ts";
import { makePki, removeDir, scenario } from "./helpers.ts";
import { finishStar, hospitalOutcome, startHospital, startPeers } from "./scenarios.ts";

x509.cryptoProvider.set(crypto);

const DAY = 86_400_000;
/** The time every pure check below is made at. */
const NOW = Date.UTC(2030, 0, 15, 12);

const P384 = { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" } as const;
const RSA = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
} as const;

type KeyAlgorithmSpec = typeof ECDSA_P256 | typeof P384 | typeof RSA;

interface Built {
  cert: x509.X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
  keyPem: string;
}

let serial = 1;

async function keyPair(algorithm: KeyAlgorithmSpec): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as CryptoKeyPair;
}

async function built(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<Built> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    cert,
    pem: cert.toString("pem") + "\n",
    keys,
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

interface CaSpec {
  notBefore?: number;
  notAfter?: number;
  key?: KeyAlgorithmSpec;
  /** The issuer name written into the certificate (default: its subject). */
  issuer?: string;
  /** The key that signs it (default: its own). */
  signer?: CryptoKey;
  extensions?: (defaults: x509.Extension[]) => x509.Extension[];
}

const CA_NAME = "CN=sumshare consortium CA";

/** A CA like `sumshare certs` makes, valid around NOW, changed by `spec`. */
async function makeCa(spec: CaSpec = {}): Promise<Built> {
  const algorithm = spec.key ?? ECDSA_P256;
  const keys = await keyPair(algorithm);
  const defaults = [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, "0"),
    subject: CA_NAME,
    issuer: spec.issuer ?? CA_NAME,
    notBefore: new Date(spec.notBefore ?? NOW - DAY),
    notAfter: new Date(spec.notAfter ?? NOW + 365 * DAY),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: spec.signer ?? keys.privateKey,
    extensions: spec.extensions ? spec.extensions(defaults) : defaults,
  });
  return await built(cert, keys);
}

interface LeafSpec {
  subject?: string;
  issuer?: string;
  notBefore?: number;
  notAfter?: number;
  key?: KeyAlgorithmSpec;
  extensions?: (defaults: x509.Extension[]) => x509.Extension[];
}

/** A party certificate like `sumshare certs` makes (serverAuth + clientAuth), changed by `spec`. */
async function makeLeaf(ca: Built, name: string, spec: LeafSpec = {}): Promise<Built> {
  const keys = await keyPair(spec.key ?? ECDSA_P256);
  const defaults = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]),
    new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }]),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, "0"),
    subject: spec.subject ?? `CN=${name}`,
    issuer: spec.issuer ?? ca.cert.subject,
    notBefore: new Date(spec.notBefore ?? NOW - DAY),
    notAfter: new Date(spec.notAfter ?? NOW + 30 * DAY),
    signingAlgorithm: ECDSA_P256,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: spec.extensions ? spec.extensions(defaults) : defaults,
  });
  return await built(cert, keys);
}

/** Replaces the extension of `type` in `list` (or drops it when `by` is undefined). */
function replace(
  list: x509.Extension[],
  type: string,
  by?: x509.Extension,
): x509.Extension[] {
  const out = list.filter((e) => e.type !== type);
  return by ? [...out, by] : out;
}

const OID_BC = "2.5.29.19";
const OID_KU = "2.5.29.15";
const OID_EKU = "2.5.29.37";
/** Changes a leaf's default extensions to an extended key usage of only `usages`. */
function ekuOnly(...usages: string[]): (defaults: x509.Extension[]) => x509.Extension[] {
  return (d) => replace(d, OID_EKU, new x509.ExtendedKeyUsageExtension(usages));
}

const UNKNOWN_CRITICAL = () =>
  new x509.Extension("1.3.6.1.4.1.99999.1", true, new Uint8Array([5, 0]));

interface Case {
  label: string;
  make: () => Promise<{ ca: Built; leaf: Built }>;
  use?: PartyUse;
  name?: string;
  reason: RegExp;
}

async function withGoodCa(leaf: (ca: Built) => Promise<Built>) {
  const ca = await makeCa();
  return { ca, leaf: await leaf(ca) };
}

async function withCa(spec: CaSpec) {
  const ca = await makeCa(spec);
  return { ca, leaf: await makeLeaf(ca, "alice") };
}

/** Every certificate the policy must refuse, for "alice" in mesh use at NOW. */
const BAD: Case[] = [
  {
    label: "a CA that expired 30 days ago",
    make: () => withCa({ notBefore: NOW - 400 * DAY, notAfter: NOW - 30 * DAY }),
    reason: /^Invalid CA certificate: it expired at 2029-12-16T12:00:00\.000Z$/,
  },
  {
    label: "a CA not yet valid",
    make: () => withCa({ notBefore: NOW + DAY }),
    reason: /^Invalid CA certificate: it is not valid before 2030-01-16T12:00:00\.000Z$/,
  },
  {
    label: "a CA without keyCertSign",
    make: () =>
      withCa({
        extensions: (d) =>
          replace(d, OID_KU, new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign, true)),
      }),
    reason: /^Invalid CA certificate: its key usage does not include keyCertSign$/,
  },
  {
    label: "a CA without a key usage extension",
    make: () => withCa({ extensions: (d) => replace(d, OID_KU) }),
    reason: /^Invalid CA certificate: it has no key usage extension \(keyCertSign is required\)$/,
  },
  {
    label: "a CA without the CA flag",
    make: () =>
      withCa({
        extensions: (d) =>
          replace(d, OID_BC, new x509.BasicConstraintsExtension(false, undefined, true)),
      }),
    reason: /^Invalid CA certificate: it is not a CA/,
  },
  {
    label: "a CA without basic constraints",
    make: () => withCa({ extensions: (d) => replace(d, OID_BC) }),
    reason: /^Invalid CA certificate: it is not a CA/,
  },
  {
    label: "a CA with an unknown critical extension",
    make: () => withCa({ extensions: (d) => [...d, UNKNOWN_CRITICAL()] }),
    reason:
      /^Invalid CA certificate: it has an unknown critical extension 1\.3\.6\.1\.4\.1\.99999\.1$/,
  },
  {
    label: "a CA with a P-384 key",
    make: async () => {
      const ca = await makeCa({ key: P384 });
      return { ca, leaf: await makeLeaf(ca, "alice") };
    },
    reason: /^Invalid CA certificate: its key is not ECDSA P-256$/,
  },
  {
    label: "a CA whose issuer is not its subject",
    make: () => withCa({ issuer: "CN=someone else" }),
    reason: /^Invalid CA certificate: it is not self-issued/,
  },
  {
    label: "a leaf not yet valid",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { notBefore: NOW + 60_000 })),
    reason: /^Invalid certificate for "alice": it is not valid before 2030-01-15T12:01:00\.000Z$/,
  },
  {
    label: "an expired leaf",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { notAfter: NOW - 1000 })),
    reason: /^Invalid certificate for "alice": it expired at 2030-01-15T11:59:59\.000Z$/,
  },
  {
    label: "a leaf that is a CA",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: (d) => replace(d, OID_BC, new x509.BasicConstraintsExtension(true, 0, true)),
        })
      ),
    reason: /^Invalid certificate for "alice": it is a CA certificate, not a party's$/,
  },
  {
    label: "a leaf without digitalSignature (keyEncipherment)",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: (d) =>
            replace(
              d,
              OID_KU,
              new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true),
            ),
        })
      ),
    reason: /^Invalid certificate for "alice": its key usage does not include digitalSignature$/,
  },
  {
    label: "a leaf with keyAgreement-only key usage and a codeSigning-only EKU",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: (d) =>
            ekuOnly(x509.ExtendedKeyUsage.codeSigning)(
              replace(
                d,
                OID_KU,
                new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
              ),
            ),
        })
      ),
    reason: /^Invalid certificate for "alice": its key usage does not include digitalSignature$/,
  },
  {
    label: "a leaf without a key usage extension",
    make: () =>
      withGoodCa((ca) => makeLeaf(ca, "alice", { extensions: (d) => replace(d, OID_KU) })),
    reason:
      /^Invalid certificate for "alice": it has no key usage extension \(digitalSignature is required\)$/,
  },
  {
    label: "a leaf with a codeSigning-only EKU",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: ekuOnly(x509.ExtendedKeyUsage.codeSigning),
        })
      ),
    reason:
      /^Invalid certificate for "alice": its extended key usage lacks serverAuth and clientAuth \(a party that both listens and connects needs serverAuth and clientAuth\)$/,
  },
  {
    label: "a leaf without an EKU",
    make: () =>
      withGoodCa((ca) => makeLeaf(ca, "alice", { extensions: (d) => replace(d, OID_EKU) })),
    reason:
      /^Invalid certificate for "alice": it has no extended key usage \(a party that both listens and connects needs serverAuth and clientAuth\)$/,
  },
  {
    label: "a leaf with an unknown critical extension",
    make: () =>
      withGoodCa((ca) => makeLeaf(ca, "alice", { extensions: (d) => [...d, UNKNOWN_CRITICAL()] })),
    reason:
      /^Invalid certificate for "alice": it has an unknown critical extension 1\.3\.6\.1\.4\.1\.99999\.1$/,
  },
  {
    label: "a leaf with a key usage extension twice",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: (d) => [
            ...d,
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
          ],
        })
      ),
    reason: /^Invalid certificate for "alice": it has extension 2\.5\.29\.15 more than once$/,
  },
  {
    label: "a leaf for another name",
    make: () => withGoodCa((ca) => makeLeaf(ca, "bob")),
    reason: /^Name mismatch: party claims "alice" but its certificate is for "bob"$/,
  },
  {
    label: "a leaf with two CNs",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { subject: "CN=alice, CN=alice" })),
    reason: /^Invalid certificate for "alice": it has 2 CNs, not exactly one$/,
  },
  {
    label: "a leaf with no CN",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { subject: "O=alice" })),
    reason: /^Invalid certificate for "alice": it has 0 CNs, not exactly one$/,
  },
  {
    label: "a leaf whose issuer name is not the CA's",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { issuer: "CN=another CA" })),
    reason: /^Certificate presented for "alice" is not issued by the consortium CA$/,
  },
  {
    label: "a leaf with an RSA key",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { key: RSA })),
    reason: /^Invalid certificate for "alice": its key is not ECDSA P-256$/,
  },
  {
    label: "a leaf with a P-384 key",
    make: () => withGoodCa((ca) => makeLeaf(ca, "alice", { key: P384 })),
    reason: /^Invalid certificate for "alice": its key is not ECDSA P-256$/,
  },
  {
    label: "a serverAuth-only leaf used as a peer",
    use: "peer",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: ekuOnly(x509.ExtendedKeyUsage.serverAuth),
        })
      ),
    reason:
      /^Invalid certificate for "alice": its extended key usage lacks clientAuth \(a peer's TLS client needs clientAuth\)$/,
  },
  {
    label: "a clientAuth-only leaf used as the hospital",
    use: "hospital",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: ekuOnly(x509.ExtendedKeyUsage.clientAuth),
        })
      ),
    reason:
      /^Invalid certificate for "alice": its extended key usage lacks serverAuth \(the hospital's TLS server needs serverAuth\)$/,
  },
  {
    label: "a serverAuth-only leaf in the mesh",
    make: () =>
      withGoodCa((ca) =>
        makeLeaf(ca, "alice", {
          extensions: ekuOnly(x509.ExtendedKeyUsage.serverAuth),
        })
      ),
    reason: /^Invalid certificate for "alice": its extended key usage lacks clientAuth/,
  },
];

/** The cases whose fault is the CA's, which loading the CA alone must refuse. */
const CA_CASES = BAD.filter((c) => c.reason.source.startsWith("^Invalid CA"));

function assertRefused(run: () => unknown, reason: RegExp, label: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof AuthError, `${label}: an AuthError, got ${error}`);
    assert.match(error.message, reason, label);
    assert.ok(!error.message.includes("\n"), `${label}: one line`);
    return true;
  }, label);
}

async function assertRejected(run: Promise<unknown>, reason: RegExp, label: string) {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof AuthError, `${label}: an AuthError, got ${error}`);
    assert.match(error.message, reason, label);
    return true;
  }, label);
}

Deno.test("the policy accepts what sumshare certs makes, for every use, as PEM, DER or parsed", async () => {
  const ca = await makeCa();
  const leaf = await makeLeaf(ca, "alice");
  const der = new Uint8Array(leaf.cert.rawData);
  for (const use of ["mesh", "hospital", "peer"] as const) {
    for (const input of [leaf.pem, der, der.buffer, leaf.cert]) {
      for (const caInput of [ca.pem, new Uint8Array(ca.cert.rawData), ca.cert]) {
        const accepted = checkCertificatePolicy(input, use, {
          ca: caInput,
          name: "alice",
          now: NOW,
        });
        assert.equal(accepted.name, "alice");
        assert.equal(accepted.use, use);
        assert.equal(accepted.ca.subject, CA_NAME);
        assert.equal(accepted.notAfter.getTime(), NOW + 30 * DAY);
        assert.equal(accepted.notBefore.getTime(), NOW - DAY);
      }
    }
  }
  // A Date works as the time too, and the windows are inclusive at both ends.
  checkCertificatePolicy(leaf.pem, "mesh", { ca: ca.cert, name: "alice", now: new Date(NOW) });
  checkCertificatePolicy(leaf.pem, "mesh", { ca: ca.cert, name: "alice", now: NOW - DAY });
  checkCertificatePolicy(leaf.pem, "mesh", { ca: ca.cert, name: "alice", now: NOW + 30 * DAY });
  const accepted = checkCertificatePolicy(ca.pem, "ca", { now: NOW });
  assert.equal(accepted.subject, CA_NAME);
  assert.equal(accepted.notAfter.getTime(), NOW + 365 * DAY);
  await verifyIssuedBy(der, ca.pem);
  await verifyIssuedBy(ca.cert, ca.cert);
});

Deno.test("the policy accepts a leaf with only the EKU its use needs", async () => {
  const ca = await makeCa();
  const only = (usage: string) =>
    makeLeaf(ca, "alice", {
      extensions: ekuOnly(usage),
    });
  const server = await only(x509.ExtendedKeyUsage.serverAuth);
  const client = await only(x509.ExtendedKeyUsage.clientAuth);
  assert.equal(
    checkCertificatePolicy(server.pem, "hospital", { ca: ca.cert, name: "alice", now: NOW }).use,
    "hospital",
  );
  assert.equal(
    checkCertificatePolicy(client.pem, "peer", { ca: ca.cert, name: "alice", now: NOW }).use,
    "peer",
  );
});

for (const c of BAD) {
  Deno.test(`the policy refuses ${c.label}`, async () => {
    const { ca, leaf } = await c.make();
    const use = c.use ?? "mesh";
    assertRefused(
      () =>
        checkCertificatePolicy(leaf.pem, use, { ca: ca.pem, name: c.name ?? "alice", now: NOW }),
      c.reason,
      c.label,
    );
    // The same through DER, as a TLS server hands it over.
    assertRefused(
      () =>
        checkCertificatePolicy(new Uint8Array(leaf.cert.rawData), use, {
          ca: ca.cert,
          name: c.name ?? "alice",
          now: NOW,
        }),
      c.reason,
      c.label,
    );
  });
}

Deno.test("the CA policy alone refuses every bad CA, and loadCaCertificate does too", async () => {
  assert.ok(CA_CASES.length >= 8);
  for (const c of CA_CASES) {
    const { ca } = await c.make();
    assertRefused(() => checkCertificatePolicy(ca.pem, "ca", { now: NOW }), c.reason, c.label);
    await assertRejected(loadCaCertificate(ca.pem, { now: NOW }), c.reason, c.label);
  }
});

Deno.test("a CA that names itself as issuer but is signed by another key is not self-signed", async () => {
  const other = await keyPair(ECDSA_P256);
  const ca = await makeCa({ signer: other.privateKey });
  // The policy (names only) accepts it; the signature check does not.
  checkCertificatePolicy(ca.pem, "ca", { now: NOW });
  await assertRejected(
    loadCaCertificate(ca.pem, { now: NOW }),
    /^Invalid CA certificate: it is not self-signed$/,
    "not self-signed",
  );
});

Deno.test("verifyIssuedBy refuses a leaf signed by another CA, or naming another issuer", async () => {
  const ours = await makeCa();
  const theirs = await makeCa(); // the same subject name, another key
  const foreign = await makeLeaf(theirs, "alice");
  // Names alone cannot tell the two CAs apart: the policy accepts it.
  checkCertificatePolicy(foreign.pem, "mesh", { ca: ours.cert, name: "alice", now: NOW });
  for (const cert of [foreign.pem, new Uint8Array(foreign.cert.rawData)]) {
    await assertRejected(
      verifyIssuedBy(cert, ours.cert, { name: "alice" }),
      /^Certificate presented for "alice" is not issued by the consortium CA$/,
      "foreign",
    );
  }
  // Signed by our CA's key, but naming another issuer.
  const misnamed = await makeLeaf(ours, "alice", { issuer: "CN=another CA" });
  await assertRejected(
    verifyIssuedBy(misnamed.pem, ours.pem),
    /^Certificate is not issued by the consortium CA$/,
    "misnamed",
  );
  await verifyIssuedBy((await makeLeaf(ours, "alice")).pem, ours.pem, { name: "alice" });
});

Deno.test("the policy refuses input that is not exactly one certificate", async () => {
  const ca = await makeCa();
  const leaf = await makeLeaf(ca, "alice");
  const options = { ca: ca.cert, name: "alice", now: NOW };
  for (
    const [input, reason] of [
      [leaf.pem + ca.pem, /not one PEM X\.509 certificate/],
      [leaf.keyPem, /not one PEM X\.509 certificate/],
      ["not a cert", /not one PEM X\.509 certificate/],
      [new Uint8Array([0x30, 0x03, 1, 2, 3]), /not a DER X\.509 certificate/],
    ] as const
  ) {
    assertRefused(() => checkCertificatePolicy(input, "mesh", options), reason, String(reason));
  }
  assertRefused(
    () => checkCertificatePolicy(leaf.pem, "mesh", { ...options, ca: ca.pem + leaf.pem }),
    /^Invalid CA certificate: not one PEM/,
    "two CA blocks",
  );
});

Deno.test("a certificate whose key usage, EKU or basic constraints do not decode is refused at parse", async () => {
  const ca = await makeCa();
  const NULL = new Uint8Array([5, 0]); // an ASN.1 NULL where a BIT STRING / SEQUENCE belongs
  for (const oid of [OID_KU, OID_EKU, OID_BC]) {
    const leaf = await makeLeaf(ca, "alice", {
      extensions: (list) => replace(list, oid, new x509.Extension(oid, false, NULL)),
    });
    assertRefused(
      () => checkCertificatePolicy(leaf.pem, "mesh", { ca: ca.cert, name: "alice", now: NOW }),
      /not one PEM X\.509 certificate/,
      oid,
    );
  }
});

Deno.test("verifyPartyCertificate re-checks the windows on every call: the cache lets no expired certificate through", async () => {
  // A CA that expires before its leaf, so both expiries can be crossed in turn.
  const ca = await makeCa({ notAfter: NOW + 10 * DAY });
  const leaf = await makeLeaf(ca, "alice", { notAfter: NOW + 5 * DAY });
  const caCert = await loadCaCertificate(ca.pem, { now: NOW });
  const ok = await verifyPartyCertificate(leaf.pem, caCert, "alice", { now: NOW });
  assert.equal(ok.name, "alice");
  // Cached now; a second call at the same time is accepted again.
  await verifyPartyCertificate(leaf.pem, caCert, "alice", { now: NOW + DAY });
  await assertRejected(
    verifyPartyCertificate(leaf.pem, caCert, "alice", { now: NOW + 6 * DAY }),
    /^Invalid certificate for "alice": it expired at /,
    "leaf expired since it was cached",
  );
  await assertRejected(
    verifyPartyCertificate(leaf.pem, caCert, "alice", { now: NOW + 11 * DAY }),
    /^Invalid CA certificate: it expired at /,
    "CA expired since the leaf was cached",
  );
  await assertRejected(
    verifyPartyCertificate(leaf.pem, caCert, "alice", { now: NOW - 2 * DAY }),
    /it is not valid before/,
    "before the window",
  );
  // The use is checked per call too, not cached with the signature.
  const serverOnly = await makeLeaf(ca, "bob", {
    extensions: ekuOnly(x509.ExtendedKeyUsage.serverAuth),
  });
  await verifyPartyCertificate(serverOnly.pem, caCert, "bob", { use: "hospital", now: NOW });
  await assertRejected(
    verifyPartyCertificate(serverOnly.pem, caCert, "bob", { use: "peer", now: NOW }),
    /lacks clientAuth/,
    "peer use",
  );
  // A foreign leaf with an identical policy profile is refused on the signature.
  const foreign = await makeLeaf(await makeCa(), "alice");
  await assertRejected(
    verifyPartyCertificate(foreign.pem, caCert, "alice", { now: NOW }),
    /not issued by the consortium CA/,
    "foreign",
  );
});

/** Writes `ca`, and `leaf` with its key as NAME.crt/.key, into a fresh temp dir. */
async function writeCredentials(ca: Built, name: string, leaf: Built): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  await Deno.writeTextFile(join(dir, "ca.crt"), ca.pem);
  await Deno.writeTextFile(join(dir, "ca.key"), ca.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(join(dir, `${name}.crt`), leaf.pem);
  await Deno.writeTextFile(join(dir, `${name}.key`), leaf.keyPem, { mode: 0o600 });
  return dir;
}

function paths(dir: string, name: string) {
  return {
    ca: join(dir, "ca.crt"),
    cert: join(dir, `${name}.crt`),
    key: join(dir, `${name}.key`),
  };
}

Deno.test("loadIdentity refuses every bad certificate with the same reason, and loads a good one", async () => {
  const ca = await makeCa();
  const good = await writeCredentials(ca, "alice", await makeLeaf(ca, "alice"));
  try {
    const identity = await loadIdentity("alice", paths(good, "alice"), { now: NOW });
    assert.equal(identity.name, "alice");
  } finally {
    await removeDir(good);
  }
  for (const c of BAD) {
    const { ca, leaf } = await c.make();
    // The policy refuses before the key is read, so a non-P-256 key gets the policy's reason.
    const dir = await writeCredentials(ca, "alice", leaf);
    try {
      await assertRejected(
        loadIdentity(c.name ?? "alice", paths(dir, "alice"), {
          now: NOW,
          ...(c.use ? { use: c.use } : {}),
        }),
        c.reason,
        c.label,
      );
    } finally {
      await removeDir(dir);
    }
  }
});

Deno.test("the CLI refuses to start a hospital whose CA expired 30 days ago", async () => {
  const ca = await makeCa({
    notBefore: Date.now() - 400 * DAY,
    notAfter: Date.now() - 30 * DAY,
  });
  const hospitalCert = await makeLeaf(ca, "hospital", {
    notBefore: Date.now() - DAY,
    notAfter: Date.now() + DAY,
  });
  const dir = await writeCredentials(ca, "hospital", hospitalCert);
  try {
    // Bounded: a hospital that wrongly starts would otherwise wait for peers.
    const h = await hospitalOutcome(dir, ["--timeout", "5"], { json: false });
    assert.equal(h.code, 1, h.stderr);
    assert.match(h.stderr, /^sumshare hospital: Invalid CA certificate: it expired at \S+$/m);
    assert.doesNotMatch(h.stderr, /waiting|listening/);
  } finally {
    await removeDir(dir);
  }
});

/** An identity that skips loadIdentity's checks, as an attacker's client would. */
async function rawIdentity(dir: string, name: string, leaf: Built): Promise<Identity> {
  const caPem = await Deno.readTextFile(join(dir, "ca.crt"));
  return {
    name,
    ca: new x509.X509Certificate(caPem),
    caPem,
    certPem: leaf.pem,
    keyPem: leaf.keyPem,
    privateKey: leaf.keys.privateKey,
  };
}

/** The CA in a `sumshare certs` directory, as a signer for test certificates. */
async function caFromDir(dir: string): Promise<Built> {
  const pem = await Deno.readTextFile(join(dir, "ca.crt"));
  const keyPem = await Deno.readTextFile(join(dir, "ca.key"));
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(keyPem),
    ECDSA_P256,
    false,
    ["sign"],
  );
  const cert = new x509.X509Certificate(pem);
  const publicKey = await cert.publicKey.export(ECDSA_P256, ["verify"], crypto);
  return { cert, pem, keyPem, keys: { privateKey, publicKey } };
}

/**
 * Connects with `identity` over plain Deno TLS and reads until the hospital
 * closes (or TLS fails); returns how many bytes it sent. Closed in `finally`.
 */
async function attackerConnection(
  hostname: string,
  port: number,
  identity: Identity,
  signal: AbortSignal,
): Promise<number> {
  let received = 0;
  let conn: Deno.TlsConn | undefined;
  const onAbort = () => conn?.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    conn = await Deno.connectTls({
      hostname,
      port,
      caCerts: [identity.caPem],
      cert: identity.certPem,
      key: identity.keyPem,
    });
    await conn.handshake();
    const buffer = new Uint8Array(1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return received;
      received += n;
    }
  } catch {
    return received; // refused in the handshake, or the connection reset
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
  }
}

Deno.test("a bad certificate from the consortium CA is refused at join; the honest round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const { hospital: h, address } = await startHospital(ps, dir, 2);
    const ca = await caFromDir(dir);
    const now = Date.now();
    const window = { notBefore: now - DAY, notAfter: now + DAY };
    // Each attempt: a name, how its certificate differs, the reason the
    // policy gives, and whether TLS itself may refuse it first (OpenSSL
    // checks validity, key usage, EKU and critical extensions during the
    // handshake, and then names no reason).
    const attempts: [string, string, LeafSpec, RegExp, boolean][] = [
      [
        "keyAgreement-only key usage, codeSigning-only EKU",
        "mallory",
        {
          extensions: (d) =>
            ekuOnly(x509.ExtendedKeyUsage.codeSigning)(
              replace(
                d,
                OID_KU,
                new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
              ),
            ),
        },
        /its key usage does not include digitalSignature/,
        true,
      ],
      [
        "codeSigning-only EKU",
        "mallory",
        {
          extensions: ekuOnly(x509.ExtendedKeyUsage.codeSigning),
        },
        /its extended key usage lacks serverAuth and clientAuth/,
        true,
      ],
      [
        "an unknown critical extension",
        "mallory",
        {
          extensions: (d) => [...d, UNKNOWN_CRITICAL()],
        },
        /unknown critical extension 1\.3\.6\.1\.4\.1\.99999\.1/,
        true,
      ],
      [
        "an expired certificate",
        "mallory",
        { notBefore: now - 2 * DAY, notAfter: now - DAY },
        /it expired at/,
        true,
      ],
      // TLS accepts these; only the certificate policy at join refuses them.
      ["a P-384 key", "mallory", { key: P384 }, /its key is not ECDSA P-256/, false],
      [
        "no key usage extension",
        "mallory",
        { extensions: (d) => replace(d, OID_KU) },
        /Invalid certificate for "mallory": /,
        false,
      ],
      ["two CNs", "mallory", { subject: "CN=mallory, CN=mallory" }, /exactly one CN/, false],
      ["the hospital's own name", "hospital", {}, /"hospital" is the hospital's own name/, false],
    ];
    /** What the hospital logs when TLS refused the certificate before the policy saw it. */
    const tlsRefusal = /the client left during the TLS handshake, or its certificate was refused/;
    const { hostname, port } = parseHostPort(address);
    for (const [i, [label, name, spec, reason, tlsMayRefuse]] of attempts.entries()) {
      const leaf = await makeLeaf(ca, name, { ...window, ...spec });
      const identity = await rawIdentity(dir, name, leaf);
      const signal = AbortSignal.timeout(10_000);
      // A raw TLS client, as an attacker's would be (lib/net/client.ts checks
      // its own credentials first). The client's handshake may finish before
      // the hospital has checked its certificate (TLS 1.3): the refusal then
      // shows as the connection closing, with nothing sent.
      const ended = await attackerConnection(hostname, port, identity, signal);
      assert.ok(!signal.aborted, `${label}: the hospital neither refused nor closed`);
      assert.equal(ended, 0, `${label}: the hospital sent nothing`);
      // One refusal line per attempt, each naming the policy's reason (or,
      // where TLS refused first, saying so).
      const refusals = await h.waitForLines(/^refused a connection from 127\.0\.0\.1:\d+: /, i + 1);
      assert.equal(refusals.length, i + 1, `${label}: one refusal each`);
      const line = refusals[i]!;
      if (!(tlsMayRefuse && tlsRefusal.test(line))) assert.match(line, reason, label);
    }
    assert.equal(h.stderrLines.filter((l) => / connected \(/.test(l)).length, 0);

    const peers = startPeers(ps, dir, address, [["alice", ["--value", "40"]], ["bob", [
      "--value",
      "2",
    ]]]);
    const end = await finishStar({ hospital: h, address, peers });
    const [hr, ar, br] = [end.hospital, end.peers.get("alice")!, end.peers.get("bob")!];
    assert.equal(hr.code, 0, hr.stderr);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.deepEqual(JSON.parse(hr.stdout).participants, ["alice", "bob"]);
    assert.equal(ar.code + br.code, 0);
  });
});

Deno.test("addParties refuses a CA that fails the policy, or a ca.key that is not the CA's, and writes nothing", async () => {
  const expired = await makeCa({
    notBefore: Date.now() - 400 * DAY,
    notAfter: Date.now() - 30 * DAY,
  });
  const noCertSign = await makeCa({
    notBefore: Date.now() - DAY,
    notAfter: Date.now() + DAY,
    extensions: (d) =>
      replace(d, OID_KU, new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign, true)),
  });
  const good = await makeCa({ notBefore: Date.now() - DAY, notAfter: Date.now() + DAY });
  const other = await makeCa({ notBefore: Date.now() - DAY, notAfter: Date.now() + DAY });
  const cases: [string, string, string, RegExp][] = [
    ["expired", expired.pem, expired.keyPem, /ca\.crt: Invalid CA certificate: it expired at /],
    ["no keyCertSign", noCertSign.pem, noCertSign.keyPem, /does not include keyCertSign/],
    ["another key", good.pem, other.keyPem, /ca\.key does not match .*ca\.crt/],
    ["not a key", good.pem, good.pem, /ca\.key is not a PKCS#8 ECDSA P-256 key/],
  ];
  for (const [label, certPem, keyPem, reason] of cases) {
    const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
    try {
      await Deno.writeTextFile(join(dir, "ca.crt"), certPem);
      await Deno.writeTextFile(join(dir, "ca.key"), keyPem, { mode: 0o600 });
      await assert.rejects(addParties(dir, ["dave"]), (error: unknown) => {
        assert.ok(error instanceof PkiError, label);
        assert.match(error.message, reason, label);
        return true;
      });
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["ca.crt", "ca.key"]);
    } finally {
      await removeDir(dir);
    }
  }
});

Deno.test("addParties cuts a new certificate's validity to the CA's expiry", async () => {
  const ca = await makeCa({ notBefore: Date.now() - DAY, notAfter: Date.now() + 10 * DAY });
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    await Deno.writeTextFile(join(dir, "ca.crt"), ca.pem);
    await Deno.writeTextFile(join(dir, "ca.key"), ca.keyPem, { mode: 0o600 });
    const added = await addParties(dir, ["dave"], { days: 365 });
    assert.equal(added.cutToCa, true);
    assert.equal(added.notAfter.getTime(), ca.cert.notAfter.getTime());
    const dave = new x509.X509Certificate(await Deno.readTextFile(join(dir, "dave.crt")));
    assert.equal(dave.notAfter.getTime(), ca.cert.notAfter.getTime());
    assert.ok(dave.notBefore.getTime() >= ca.cert.notBefore.getTime());
    const short = await addParties(dir, ["erin"], { days: 2 });
    assert.equal(short.cutToCa, false);
    assert.ok(Math.abs(short.notAfter.getTime() - (Date.now() + 2 * DAY)) < 60_000);
  } finally {
    await removeDir(dir);
  }
});
