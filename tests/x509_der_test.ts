/**
 * The strict DER reader behind the certificate policy (lib/x509_der.ts):
 * it reads what `@peculiar/x509` reads from every certificate the policy
 * tests build; it refuses, with an AuthError and never a crash, DER that is
 * truncated, mis-tagged, non-minimal, has trailing bytes or is not the
 * profile (even when the CA signed it); the CA signature is checked on the
 * exact signed bytes, in the one DER encoding of the signature, with the
 * issuer compared by its exact bytes.
 */
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import {
  checkCertificatePolicy,
  commonNames,
  ECDSA_P256,
  importCertificateKey,
  parseCertificate,
  readCertificateFields,
  verifyIssuedBy,
} from "../lib/certpolicy.ts";
import { AuthError } from "../lib/errors.ts";
import { loadCaCertificate, verifyPartyCertificate } from "../lib/identity.ts";
import { createConsortium } from "../lib/pki.ts";
import { DerError, ecdsaSignatureToP1363, readCertificate } from "../lib/x509_der.ts";

x509.cryptoProvider.set(crypto);

const DAY = 86_400_000;
const NOW = Date.UTC(2030, 0, 15, 12);
const CA_NAME = "CN=sumshare consortium CA";

type Bytes = Uint8Array<ArrayBuffer>;

// ---------------------------------------------------------------------------
// A minimal DER toolkit for building hostile certificates (test-only).

/** DER length bytes; `long` forces the long form with that many bytes (non-minimal). */
function lengthBytes(n: number, long?: number): number[] {
  if (long === undefined && n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  while (long !== undefined && out.length < long) out.unshift(0);
  return [0x80 | out.length, ...out];
}

function tlv(tag: number, content: Bytes, long?: number): Bytes {
  return Uint8Array.from([tag, ...lengthBytes(content.length, long), ...content]);
}

function concat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface Node {
  tag: number;
  /** The whole element. */
  raw: Bytes;
  content: Bytes;
}

/** Splits well-formed DER content into its elements (definite lengths only). */
function children(bytes: Bytes): Node[] {
  const out: Node[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at]!;
    let length = bytes[at + 1]!;
    let header = 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[at + 2 + i]!;
      header += count;
    }
    out.push({
      tag,
      raw: bytes.subarray(at, at + header + length),
      content: bytes.subarray(at + header, at + header + length),
    });
    at += header + length;
  }
  return out;
}

function only(bytes: Bytes): Node {
  const [node, ...rest] = children(bytes);
  assert.ok(node && rest.length === 0);
  return node;
}

/** A certificate's three parts. */
function split(der: Bytes): { tbs: Node; algorithm: Node; signature: Node } {
  const [tbs, algorithm, signature] = children(only(der).content);
  return { tbs: tbs!, algorithm: algorithm!, signature: signature! };
}

/** The ten fields of the tbsCertificate (version … extensions). */
function tbsFields(der: Bytes): Bytes[] {
  return children(split(der).tbs.content).map((n) => n.raw.slice());
}

/** DER INTEGER content for a non-negative big-endian magnitude (minimal). */
function minimalInteger(magnitude: Bytes): Bytes {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  return trimmed[0]! >= 0x80 ? concat(Uint8Array.of(0), trimmed) : trimmed;
}

function ecdsaSigValue(p1363: Bytes, r?: Bytes, s?: Bytes): Bytes {
  return tlv(
    0x30,
    concat(
      tlv(0x02, r ?? minimalInteger(p1363.subarray(0, 32))),
      tlv(0x02, s ?? minimalInteger(p1363.subarray(32))),
    ),
  );
}

const SHA256_ALG = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2);

/** Signs `tbs` with `key` and wraps it as a certificate. */
async function signed(
  tbs: Bytes,
  key: CryptoKey,
  { algorithm = SHA256_ALG, encode = (sig: Bytes) => ecdsaSigValue(sig) }: {
    algorithm?: Bytes;
    encode?: (p1363: Bytes) => Bytes;
  } = {},
): Promise<Bytes> {
  const p1363 = new Uint8Array(
    await crypto.subtle.sign(ECDSA_P256, key, tbs as Uint8Array<ArrayBuffer>),
  );
  return tlv(
    0x30,
    concat(tbs, algorithm, tlv(0x03, concat(Uint8Array.of(0), encode(p1363)))),
  );
}

/** A tbsCertificate from its fields, optionally changed by `change` (which may add or drop). */
function tbsOf(fields: Bytes[], change?: (f: Bytes[]) => Bytes[]): Bytes {
  return tlv(0x30, concat(...(change ? change(fields.map((f) => f.slice())) : fields)));
}

function pem(der: Bytes): string {
  return x509.PemConverter.encode(der as Uint8Array<ArrayBuffer>, "CERTIFICATE") + "\n";
}

// ---------------------------------------------------------------------------
// Certificates as the policy tests build them.

interface Pki {
  ca: x509.X509Certificate;
  caKeys: CryptoKeyPair;
  leaf: x509.X509Certificate;
  leafDer: Bytes;
}

async function keys(algorithm: EcKeyGenParams | RsaHashedKeyGenParams = ECDSA_P256) {
  return await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as CryptoKeyPair;
}

let serial = 0x70;

async function makePki(
  leafSpec: { subject?: string; serial?: string; extensions?: x509.Extension[] } = {},
): Promise<Pki> {
  const caKeys = await keys();
  const ca = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16),
    subject: CA_NAME,
    issuer: CA_NAME,
    notBefore: new Date(NOW - DAY),
    notAfter: new Date(NOW + 365 * DAY),
    signingAlgorithm: ECDSA_P256,
    publicKey: caKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  const leafKeys = await keys();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: leafSpec.serial ?? (serial++).toString(16),
    subject: leafSpec.subject ?? "CN=alice",
    issuer: ca.subject,
    notBefore: new Date(NOW - DAY),
    notAfter: new Date(NOW + 30 * DAY),
    signingAlgorithm: ECDSA_P256,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: leafSpec.extensions ?? [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  return { ca, caKeys, leaf, leafDer: new Uint8Array(leaf.rawData) };
}

const OPTIONS = (ca: x509.X509Certificate) => ({ ca, name: "alice", now: NOW });

/** The policy and the signature together, as verifyPartyCertificate applies them. */
async function accept(der: Bytes, ca: x509.X509Certificate): Promise<void> {
  const accepted = checkCertificatePolicy(der, "mesh", OPTIONS(ca));
  await verifyIssuedBy(accepted.fields, ca, { name: "alice" });
}

/** Refused by the reader (for `reason`, when given) and so by the policy, as an AuthError. */
function assertUnreadable(
  der: Bytes,
  ca: x509.X509Certificate,
  label: string,
  reason?: RegExp,
): void {
  assert.throws(
    () => readCertificate(der),
    (error: unknown) => error instanceof DerError && (!reason || reason.test(error.message)),
    label,
  );
  assert.throws(
    () => checkCertificatePolicy(der, "mesh", OPTIONS(ca)),
    (error: unknown) =>
      error instanceof AuthError &&
      /^Invalid certificate for "alice": not a DER X\.509 certificate$/.test(error.message) &&
      error.cause instanceof DerError,
    label,
  );
}

async function assertNotIssued(der: Bytes, ca: x509.X509Certificate, label: string) {
  await assert.rejects(
    accept(der, ca),
    (error: unknown) =>
      error instanceof AuthError &&
      /^Certificate presented for "alice" is not issued by the consortium CA$/.test(error.message),
    label,
  );
}

// ---------------------------------------------------------------------------

Deno.test("the reader reads what @peculiar/x509 reads, from every kind of certificate", async () => {
  const consortium = await createConsortium(["alice", "bob"]);
  const certs: x509.X509Certificate[] = [
    new x509.X509Certificate(consortium.ca.cert),
    ...[...consortium.parties.values()].map((p) => new x509.X509Certificate(p.cert)),
  ];
  // Serials with the high bit set (a sign byte), names with several CNs or
  // none, UTF-8 names, unusual key usages, a P-384 and an RSA key.
  for (
    const spec of [
      { serial: "80aa" },
      { serial: "00ff01" },
      { subject: "CN=alice, CN=bob, O=Zürich" },
      { subject: "O=nobody" },
      { subject: "CN=Ålice" },
      {
        extensions: [
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.decipherOnly | x509.KeyUsageFlags.keyAgreement,
            true,
          ),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning], true),
        ],
      },
    ]
  ) {
    const pki = await makePki(spec);
    certs.push(pki.ca, pki.leaf);
  }
  for (
    const algorithm of [{ name: "ECDSA", namedCurve: "P-384" }, {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: Uint8Array.of(1, 0, 1),
      hash: "SHA-256",
    }]
  ) {
    const signer = await keys();
    const subjectKeys = await keys(algorithm);
    certs.push(
      await x509.X509CertificateGenerator.create({
        serialNumber: "01",
        subject: "CN=alice",
        issuer: CA_NAME,
        notBefore: new Date(NOW),
        notAfter: new Date(NOW + DAY),
        signingAlgorithm: ECDSA_P256,
        publicKey: subjectKeys.publicKey,
        signingKey: signer.privateKey,
        extensions: [new x509.BasicConstraintsExtension(false)],
      }),
    );
  }
  // A validity past 2049, written as GeneralizedTime.
  const late = await keys();
  certs.push(
    await x509.X509CertificateGenerator.create({
      serialNumber: "02",
      subject: "CN=alice",
      issuer: CA_NAME,
      notBefore: new Date(Date.UTC(2049, 11, 31, 23, 59, 59)),
      notAfter: new Date(Date.UTC(2150, 1, 28, 0, 0, 1)),
      signingAlgorithm: ECDSA_P256,
      publicKey: late.publicKey,
      signingKey: late.privateKey,
      extensions: [new x509.BasicConstraintsExtension(true, 3, true)],
    }),
  );
  for (const cert of certs) {
    const label = `${cert.subject} #${cert.serialNumber}`;
    const fields = readCertificate(new Uint8Array(cert.rawData));
    assert.equal(fields.serial, cert.serialNumber.toLowerCase(), label);
    assert.deepEqual(fields.commonNames, cert.subjectName.getField("CN"), label);
    assert.equal(fields.notBefore, cert.notBefore.getTime(), label);
    assert.equal(fields.notAfter, cert.notAfter.getTime(), label);
    assert.deepEqual(
      fields.extensions,
      [...cert.extensions].map((e) => ({ id: e.type, critical: e.critical })),
      label,
    );
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    assert.equal(fields.keyUsage, ku?.usages, label);
    assert.deepEqual(
      fields.extendedKeyUsage,
      ((usages) => usages && [...usages])(
        cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages,
      ),
      label,
    );
    assert.equal(fields.isCa, cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false);
    const algorithm = cert.publicKey.algorithm as EcKeyAlgorithm;
    assert.equal(fields.p256, algorithm.name === "ECDSA" && algorithm.namedCurve === "P-256");
    assert.deepEqual(
      new Uint8Array((cert as unknown as { tbs: ArrayBuffer }).tbs),
      fields.tbs,
      `${label}: the signed bytes are the DER's own`,
    );
    assert.deepEqual(fields.der, new Uint8Array(cert.rawData));
    assert.deepEqual(
      new Uint8Array(new x509.Name(cert.subject).toArrayBuffer()),
      fields.subject,
      label,
    );
  }
});

Deno.test("the reader refuses every truncation, trailing byte and wrong tag, with an AuthError", async () => {
  const { ca, leafDer } = await makePki();
  await accept(leafDer, ca);
  for (let length = 0; length < leafDer.length; length++) {
    assertUnreadable(leafDer.subarray(0, length), ca, `truncated to ${length} bytes`);
  }
  assertUnreadable(concat(leafDer, Uint8Array.of(0)), ca, "a byte after the certificate");
  assertUnreadable(concat(leafDer, leafDer), ca, "two certificates");
  const wrongTag = leafDer.slice();
  wrongTag[0] = 0x31;
  assertUnreadable(wrongTag, ca, "a SET, not a SEQUENCE");
  const { tbs, algorithm, signature } = split(leafDer);
  // Inside the certificate: a fourth element, or the tbsCertificate missing.
  assertUnreadable(
    tlv(0x30, concat(tbs.raw, algorithm.raw, signature.raw, tlv(0x05, new Uint8Array()))),
    ca,
    "a fourth element",
  );
  assertUnreadable(tlv(0x30, concat(algorithm.raw, signature.raw)), ca, "no tbsCertificate");
  // A byte string where the signature's BIT STRING belongs.
  assertUnreadable(
    tlv(0x30, concat(tbs.raw, algorithm.raw, tlv(0x04, signature.content))),
    ca,
    "an OCTET STRING signature",
  );
});

Deno.test("the reader refuses non-DER lengths: long form for short, leading zeros, indefinite", async () => {
  const { ca, leafDer, caKeys } = await makePki();
  const { tbs, algorithm, signature } = split(leafDer);
  const body = concat(tbs.raw, algorithm.raw, signature.raw);
  assert.deepEqual(tlv(0x30, body), leafDer, "the rebuild helper is exact");
  assertUnreadable(
    tlv(0x30, body, 3),
    ca,
    "a length with a leading zero byte",
    /non-minimal length/,
  );
  const fields = tbsFields(leafDer);
  // The serial's 1-byte length written in long form, in a certificate the CA signed.
  const serialNode = only(fields[1]!);
  const longSerial = await signed(
    tbsOf(fields, (f) => {
      f[1] = tlv(0x02, serialNode.content, 1);
      return f;
    }),
    caKeys.privateKey,
  );
  assertUnreadable(
    longSerial,
    ca,
    "a short length in long form, signed",
    /serial number has a non-minimal length/,
  );
  const indefinite = concat(Uint8Array.of(0x30, 0x80), body, Uint8Array.of(0, 0));
  assertUnreadable(indefinite, ca, "an indefinite length", /unsupported length form/);
  // An O= attribute whose value has a multi-byte tag (0x1f, then tag number 1).
  const organization = Uint8Array.of(
    0x31,
    0x0a,
    0x30,
    0x08,
    0x06,
    0x03,
    0x55,
    0x04,
    0x0a,
    0x1f,
    0x01,
    0x61,
  );
  const multiByteTag = await signed(
    tbsOf(fields, (f) => {
      f[5] = tlv(0x30, concat(organization, only(f[5]!).content));
      return f;
    }),
    caKeys.privateKey,
  );
  assertUnreadable(multiByteTag, ca, "a multi-byte tag", /multi-byte tag/);
  // The honest certificate re-signed through the same helpers is accepted:
  // the refusals above are the DER's, not the helpers'.
  await accept(await signed(tbsOf(fields), caKeys.privateKey), ca);
});

/** Why the reader refuses each case below: the guard meant, not some other. */
const PROFILE_REASONS: Record<string, RegExp> = {
  "no version (v1)": /^version has tag/,
  "version v2": /^version is not v3/,
  "a version with trailing bytes": /^version has trailing bytes/,
  "a non-minimal serial": /^serial number is not minimally encoded/,
  "an empty serial": /^serial number is empty/,
  "no extensions": /^extensions is missing/,
  "an empty extension list": /^extensions are empty/,
  "an issuer unique ID": /^extensions has tag 0x81/,
  "31 February": /^notBefore is not a valid time/,
  "a time without seconds": /^notBefore is not a DER time/,
  "a local time": /^notBefore is not a DER time/,
  "fractional seconds": /^notBefore is not a DER time/,
  "hour 24": /^notBefore is not a valid time/,
  "a time as an OCTET STRING": /^notBefore has tag 0x4/,
  "a BMPString CN": /^subject CN is not a UTF8String/,
  "a CN that is not UTF-8": /^subject CN is not UTF-8/,
  "a PrintableString CN with '@'": /^subject CN is not a UTF8String/,
  "an empty RDN": /^subject has an empty RDN/,
  "an extension with an explicit non-critical flag": /explicit non-critical flag/,
  "a critical flag that is not DER (0x01)": /criticality is not a DER BOOLEAN/,
  "an extension id with a non-minimal arc": /^extension id is not minimally encoded/,
  "basic constraints with an explicit CA FALSE": /explicit CA flag FALSE/,
  "basic constraints with a negative path length": /path length is negative/,
  "basic constraints with trailing bytes": /^basic constraints has trailing bytes/,
  "a key usage that sets an unused bit": /^key usage sets unused bits/,
  "a key usage with 8 unused bits": /^key usage is not a DER BIT STRING/,
  "an empty extended key usage": /^extended key usage is empty/,
  "a subject key with unused bits": /^subject public key is not whole bytes/,
  "a tbsCertificate with trailing bytes": /^tbsCertificate has trailing bytes/,
  "an extension id cut mid-arc": /^extension id is truncated/,
  "a CN whose length runs past its RDN": /^subject attribute is truncated/,
};

Deno.test("the reader refuses what is not the profile even when the CA signed it", async () => {
  const { ca, leafDer, caKeys } = await makePki();
  const fields = tbsFields(leafDer);
  const [version, serialField, , , validity, subject, , extensions] = fields;
  const extensionList = children(only(only(extensions!).content).content).map((n) => n.raw);
  const withExtensions = (list: Bytes[]) => tlv(0xa3, tlv(0x30, concat(...list)));
  const time = (tag: number, text: string) => tlv(tag, new TextEncoder().encode(text));
  const validityOf = (notBefore: Bytes) =>
    tlv(0x30, concat(notBefore, children(only(validity!).content)[1]!.raw));
  const subjectWith = (tag: number, value: Bytes) =>
    tlv(
      0x30,
      tlv(0x31, tlv(0x30, concat(Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03), tlv(tag, value)))),
    );
  const extension = (oid: Bytes, critical: Bytes | undefined, value: Bytes) =>
    tlv(0x30, concat(oid, critical ?? new Uint8Array(), tlv(0x04, value)));
  const KU = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x0f);
  const BC = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x13);
  const EKU = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x25);
  const TRUE = Uint8Array.of(0x01, 0x01, 0xff);
  const cases: [string, (f: Bytes[]) => Bytes[]][] = [
    ["no version (v1)", (f) => f.slice(1)],
    ["version v2", (f) => [tlv(0xa0, tlv(0x02, Uint8Array.of(1))), ...f.slice(1)]],
    ["a version with trailing bytes", (f) => {
      f[0] = tlv(0xa0, concat(only(version!).content, Uint8Array.of(5, 0)));
      return f;
    }],
    ["a non-minimal serial", (f) => {
      f[1] = tlv(0x02, concat(Uint8Array.of(0), only(serialField!).content));
      return f;
    }],
    ["an empty serial", (f) => {
      f[1] = Uint8Array.of(0x02, 0x00);
      return f;
    }],
    ["no extensions", (f) => f.slice(0, 7)],
    ["an empty extension list", (f) => [...f.slice(0, 7), withExtensions([])]],
    ["an issuer unique ID", (f) => [...f.slice(0, 7), Uint8Array.of(0x81, 1, 0), ...f.slice(7)]],
    ["31 February", (f) => {
      f[4] = validityOf(time(0x17, "300231120000Z"));
      return f;
    }],
    ["a time without seconds", (f) => {
      f[4] = validityOf(time(0x17, "3001141200Z"));
      return f;
    }],
    ["a local time", (f) => {
      f[4] = validityOf(time(0x17, "300114120000+0100"));
      return f;
    }],
    ["fractional seconds", (f) => {
      f[4] = validityOf(time(0x18, "20300114120000.5Z"));
      return f;
    }],
    ["hour 24", (f) => {
      f[4] = validityOf(time(0x18, "20300114240000Z"));
      return f;
    }],
    ["a time as an OCTET STRING", (f) => {
      f[4] = validityOf(time(0x04, "300114120000Z"));
      return f;
    }],
    ["a BMPString CN", (f) => {
      f[5] = subjectWith(0x1e, Uint8Array.of(0, 0x61));
      return f;
    }],
    ["a CN that is not UTF-8", (f) => {
      f[5] = subjectWith(0x0c, Uint8Array.of(0x61, 0xc3));
      return f;
    }],
    ["a PrintableString CN with '@'", (f) => {
      f[5] = subjectWith(0x13, new TextEncoder().encode("a@b"));
      return f;
    }],
    ["an empty RDN", (f) => {
      f[5] = tlv(0x30, tlv(0x31, new Uint8Array()));
      return f;
    }],
    ["an extension with an explicit non-critical flag", (f) => {
      f[7] = withExtensions([
        ...extensionList,
        extension(Uint8Array.of(6, 3, 0x55, 0x1d, 0x11), Uint8Array.of(1, 1, 0), new Uint8Array()),
      ]);
      return f;
    }],
    ["a critical flag that is not DER (0x01)", (f) => {
      f[7] = withExtensions([
        extension(KU, Uint8Array.of(1, 1, 1), Uint8Array.of(3, 2, 7, 0x80)),
        ...extensionList.slice(2),
      ]);
      return f;
    }],
    ["an extension id with a non-minimal arc", (f) => {
      f[7] = withExtensions([
        ...extensionList,
        extension(
          Uint8Array.of(6, 4, 0x55, 0x80, 0x1d, 0x11),
          undefined,
          tlv(0x30, new Uint8Array()),
        ),
      ]);
      return f;
    }],
    ["basic constraints with an explicit CA FALSE", (f) => {
      f[7] = withExtensions([
        extension(BC, TRUE, tlv(0x30, Uint8Array.of(1, 1, 0))),
        ...extensionList.slice(1),
      ]);
      return f;
    }],
    ["basic constraints with a negative path length", (f) => {
      f[7] = withExtensions([
        extension(BC, TRUE, tlv(0x30, Uint8Array.of(2, 1, 0xff))),
        ...extensionList.slice(1),
      ]);
      return f;
    }],
    ["basic constraints with trailing bytes", (f) => {
      f[7] = withExtensions([
        extension(BC, TRUE, concat(tlv(0x30, new Uint8Array()), Uint8Array.of(5, 0))),
        ...extensionList.slice(1),
      ]);
      return f;
    }],
    ["a key usage that sets an unused bit", (f) => {
      f[7] = withExtensions([
        extensionList[0]!,
        extension(KU, TRUE, Uint8Array.of(3, 2, 7, 0x81)),
        ...extensionList.slice(2),
      ]);
      return f;
    }],
    ["a key usage with 8 unused bits", (f) => {
      f[7] = withExtensions([
        extensionList[0]!,
        extension(KU, TRUE, Uint8Array.of(3, 2, 8, 0x80)),
        ...extensionList.slice(2),
      ]);
      return f;
    }],
    ["an empty extended key usage", (f) => {
      f[7] = withExtensions([
        ...extensionList.slice(0, 2),
        extension(EKU, undefined, tlv(0x30, new Uint8Array())),
        ...extensionList.slice(3),
      ]);
      return f;
    }],
    ["a subject key with unused bits", (f) => {
      const [algorithm, key] = children(only(f[6]!).content);
      f[6] = tlv(
        0x30,
        concat(algorithm!.raw, tlv(0x03, concat(Uint8Array.of(4), key!.content.subarray(1)))),
      );
      return f;
    }],
    ["a tbsCertificate with trailing bytes", (f) => [...f, Uint8Array.of(5, 0)]],
    ["an extension id cut mid-arc", (f) => {
      f[7] = withExtensions([
        ...extensionList,
        extension(Uint8Array.of(6, 3, 0x55, 0x1d, 0x8f), undefined, tlv(0x30, new Uint8Array())),
      ]);
      return f;
    }],
    // The attribute claims one byte more than its RDN holds: the byte after
    // the Name ("0", the SPKI's tag), which a lax reader would read as "alice0".
    ["a CN whose length runs past its RDN", (f) => {
      const cn = Uint8Array.of(
        0x06,
        0x03,
        0x55,
        0x04,
        0x03,
        0x13,
        0x06,
        ...new TextEncoder().encode("alice"),
      );
      f[5] = tlv(0x30, tlv(0x31, concat(Uint8Array.of(0x30, cn.length + 1), cn)));
      return f;
    }],
  ];
  assert.ok(subject);
  // The honest fields through the same helpers are read, and the CN is alice.
  assert.deepEqual(readCertificate(await signed(tbsOf(fields), caKeys.privateKey)).commonNames, [
    "alice",
  ]);
  for (const [label, change] of cases) {
    const reason = PROFILE_REASONS[label];
    assert.ok(reason, label);
    assertUnreadable(await signed(tbsOf(fields, change), caKeys.privateKey), ca, label, reason);
  }
});

Deno.test("the CA signature is checked in its one DER encoding, on the exact signed bytes", async () => {
  const { ca, leafDer, caKeys } = await makePki();
  const tbs = split(leafDer).tbs.raw.slice();
  const sign = (encode: (p1363: Bytes) => Bytes, algorithm?: Bytes) =>
    signed(tbs, caKeys.privateKey, algorithm ? { algorithm, encode } : { encode });
  await accept(await sign((p) => ecdsaSigValue(p)), ca);
  const r = (p: Bytes) => minimalInteger(p.subarray(0, 32));
  const s = (p: Bytes) => minimalInteger(p.subarray(32));
  const cases: [string, (p: Bytes) => Bytes][] = [
    // The same valid signature, encoded a second way: refused, or certificates would be malleable.
    ["r with a redundant zero byte", (p) => ecdsaSigValue(p, concat(Uint8Array.of(0), r(p)))],
    [
      "s with a redundant zero byte",
      (p) => ecdsaSigValue(p, undefined, concat(Uint8Array.of(0), s(p))),
    ],
    [
      "r without its sign byte (negative)",
      (p) => ecdsaSigValue(p, Uint8Array.of(0x80, ...p.subarray(1, 32))),
    ],
    [
      "r longer than 32 bytes",
      (p) => ecdsaSigValue(p, concat(Uint8Array.of(1), p.subarray(0, 32))),
    ],
    ["an empty r", (p) => ecdsaSigValue(p, new Uint8Array())],
    [
      "bytes after s",
      (p) => tlv(0x30, concat(only(ecdsaSigValue(p)).content, Uint8Array.of(2, 1, 1))),
    ],
    ["bytes after the SEQUENCE", (p) => concat(ecdsaSigValue(p), Uint8Array.of(0))],
    ["a SET, not a SEQUENCE", (p) => tlv(0x31, only(ecdsaSigValue(p)).content)],
    ["raw r‖s, not DER", (p) => p],
    ["only r", (p) => tlv(0x30, tlv(0x02, r(p)))],
  ];
  for (const [label, encode] of cases) {
    const der = await sign(encode);
    checkCertificatePolicy(der, "mesh", OPTIONS(ca)); // structurally a certificate
    await assertNotIssued(der, ca, label);
  }
  // Another algorithm outside the signed part, or SHA-256 with NULL parameters (RFC 5758: none).
  const SHA384 = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 3);
  await assertNotIssued(await sign((p) => ecdsaSigValue(p), SHA384), ca, "outer SHA-384");
  const withNull = tlv(0x30, concat(SHA256_ALG.subarray(2), Uint8Array.of(5, 0)));
  await assertNotIssued(await sign((p) => ecdsaSigValue(p), withNull), ca, "NULL parameters");
  // The signed part's own algorithm must be ecdsa-with-SHA256 too, and match.
  const fields = tbsFields(leafDer);
  fields[2] = SHA384;
  const innerMismatch = await signed(tbsOf(fields), caKeys.privateKey);
  await assertNotIssued(innerMismatch, ca, "inner SHA-384");
  // The converter on its own: strict, and exact.
  const p1363 = crypto.getRandomValues(new Uint8Array(64));
  p1363[0] = 0x80; // r needs its sign byte
  p1363[32] = 0; // s is shorter than 32 bytes
  assert.deepEqual(ecdsaSignatureToP1363(ecdsaSigValue(p1363)), p1363);
  for (const [label, encode] of cases) {
    assert.throws(() => ecdsaSignatureToP1363(encode(p1363)), DerError, label);
  }
});

Deno.test("a P-256 point under another key algorithm is neither accepted nor imported", async () => {
  const { ca, leafDer, caKeys } = await makePki();
  const P384_CURVE = Uint8Array.of(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22);
  const fields = tbsFields(leafDer);
  const [algorithm, key] = children(only(fields[6]!).content);
  const [id] = children(algorithm!.content);
  fields[6] = tlv(0x30, concat(tlv(0x30, concat(id!.raw, P384_CURVE)), key!.raw));
  const der = await signed(tbsOf(fields), caKeys.privateKey);
  const read = readCertificateFields(der);
  assert.equal(read.p256, false);
  assert.equal(read.publicKey.length, 65, "the key bits are still a P-256 point");
  assert.throws(
    () => checkCertificatePolicy(read, "mesh", OPTIONS(ca)),
    (error: unknown) =>
      error instanceof AuthError && /its key is not ECDSA P-256$/.test(error.message),
  );
  await assert.rejects(importCertificateKey(read), AuthError);
  await importCertificateKey(readCertificateFields(leafDer));
});

Deno.test("the issuer is compared by its exact bytes: the same name in another string type is not the CA", async () => {
  const { ca, leafDer, caKeys } = await makePki();
  const fields = tbsFields(leafDer);
  const issuer = fields[3]!.slice();
  const at = issuer.indexOf(0x13); // the CN's PrintableString
  assert.ok(at > 0);
  issuer[at] = 0x0c; // the same characters as a UTF8String
  fields[3] = issuer;
  const der = await signed(tbsOf(fields), caKeys.privateKey);
  // peculiar prints both names alike, so a string comparison would let it pass.
  assert.equal(new x509.X509Certificate(der as Uint8Array<ArrayBuffer>).issuer, ca.subject);
  assert.throws(
    () => checkCertificatePolicy(der, "mesh", OPTIONS(ca)),
    (error: unknown) =>
      error instanceof AuthError &&
      /^Certificate presented for "alice" is not issued by the consortium CA$/.test(error.message),
  );
  await assertNotIssued(der, ca, "issuer re-encoded");
});

Deno.test("no single-byte change to a certificate gets through, and none crashes the check", async () => {
  const { ca, leafDer } = await makePki();
  await accept(leafDer, ca);
  let unreadable = 0;
  for (let i = 0; i < leafDer.length; i++) {
    for (const change of [0x01, 0x80, 0xff]) {
      const der = leafDer.slice();
      der[i]! ^= change;
      try {
        await accept(der, ca);
      } catch (error) {
        assert.ok(error instanceof AuthError, `byte ${i} ^ ${change}: ${error}`);
        if (error.cause instanceof DerError) unreadable++;
        continue;
      }
      assert.fail(`byte ${i} ^ ${change} was accepted`);
    }
  }
  assert.ok(unreadable > leafDer.length, "most changes break the DER itself");
});

Deno.test("verifyPartyCertificate refuses hostile DER as PEM, and the fast path keeps the old API", async () => {
  const { ca, leaf, leafDer, caKeys } = await makePki();
  const caCert = await loadCaCertificate(ca.toString("pem"), { now: NOW });
  const ok = await verifyPartyCertificate(pem(leafDer), caCert, "alice", { now: NOW });
  assert.equal(ok.name, "alice");
  // The key is the certificate's: it verifies what the leaf's key would.
  assert.deepEqual(
    new Uint8Array(await crypto.subtle.exportKey("spki", ok.publicKey)),
    new Uint8Array(leaf.publicKey.rawData),
  );
  for (
    const [label, der] of [
      ["truncated", leafDer.subarray(0, 200)],
      ["trailing", concat(leafDer, Uint8Array.of(0))],
      [
        "re-encoded signature",
        await signed(split(leafDer).tbs.raw, caKeys.privateKey, {
          encode: (p) =>
            ecdsaSigValue(p, concat(Uint8Array.of(0), minimalInteger(p.subarray(0, 32)))),
        }),
      ],
    ] as const
  ) {
    await assert.rejects(
      verifyPartyCertificate(pem(der), caCert, "alice", { now: NOW }),
      AuthError,
      label,
    );
  }
  // The conveniences callers outside the hot path use still work.
  const accepted = checkCertificatePolicy(leafDer, "mesh", { ca: caCert, name: "alice", now: NOW });
  assert.ok(accepted.certificate instanceof x509.X509Certificate);
  assert.equal(accepted.certificate.subject, "CN=alice");
  assert.equal(accepted.ca, caCert);
  assert.deepEqual(commonNames(pem(leafDer)), ["alice"]);
  assert.equal(parseCertificate(pem(leafDer)).subjectName.getField("CN")[0], "alice");
  assert.equal(readCertificateFields(accepted.certificate), accepted.fields);
  assert.throws(() => commonNames(leafDer.subarray(1)), AuthError);
  // The fields are a copy: changing the caller's bytes afterwards changes nothing.
  const mine = leafDer.slice();
  const fields = readCertificateFields(mine);
  mine.fill(0);
  await verifyIssuedBy(fields, caCert);
  // Fields forged by hand are not taken as read.
  assert.throws(() => readCertificateFields({ ...fields }), AuthError);
});
