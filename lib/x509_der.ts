/**
 * A strict DER reader for the one certificate profile sumshare issues and
 * accepts: X.509 v3, names, validity, an SPKI, and the extensions the policy
 * reads. It returns the exact bytes the CA signed (so the signature is checked
 * on them, never on a re-serialization) and the facts `certpolicy.ts` decides
 * on; it decides nothing itself.
 *
 * Why not a library: `AsnConvert.parse(der, Certificate)` from
 * `@peculiar/asn1-x509` alone measured 0.45–0.49 ms a certificate here, and
 * `new X509Certificate(der)` of `@peculiar/x509` about the same, against
 * ECDSA P-256 verify at 0.3–0.4 ms; `X509Certificate.verify` adds a
 * re-serialization of the tbsCertificate (0.4 ms more). A peer checks every
 * neighbour's certificate, so parsing was the larger part of the check.
 * node:crypto's X509Certificate (0.6 ms with verify) does not expose key
 * usage bits or extension criticality, which the policy needs. This reader
 * takes about 0.01 ms, and refuses anything that is not DER (indefinite or
 * non-minimal lengths, non-minimal integers, trailing bytes, explicit
 * defaults, high tag numbers) rather than guessing.
 *
 * @module
 */

/** The bytes are not a DER certificate of the profile; `message` says where. */
export class DerError extends Error {
  override name = "DerError";
}

/** One extension: its OID and whether it is marked critical. */
export interface ExtensionEntry {
  id: string;
  critical: boolean;
}

/** What a certificate says, as read from its DER. Produced only by {@linkcode readCertificate}. */
export interface CertificateFields {
  /** The whole certificate. */
  readonly der: Uint8Array<ArrayBuffer>;
  /** The exact tbsCertificate bytes (tag and length included): what the issuer signed. */
  readonly tbs: Uint8Array<ArrayBuffer>;
  /** The serial number, hex, lower case, without a sign byte (as `@peculiar/x509` prints it). */
  readonly serial: string;
  /** The issuer Name, exact DER bytes. */
  readonly issuer: Uint8Array;
  /** The subject Name, exact DER bytes. */
  readonly subject: Uint8Array;
  /** Every CN of the subject, in order. */
  readonly commonNames: readonly string[];
  /** Milliseconds since the epoch. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** Whether the key is id-ecPublicKey on the named curve P-256. */
  readonly p256: boolean;
  /** The subject key's BIT STRING content (for P-256: the 65-byte uncompressed point). */
  readonly publicKey: Uint8Array<ArrayBuffer>;
  /** Each extension in order, duplicates kept so the policy can refuse them. */
  readonly extensions: readonly ExtensionEntry[];
  /** Basic constraints' CA flag (false without the extension); the first copy's. */
  readonly isCa: boolean;
  /** Key usage bits (bit i of the BIT STRING as 1 << i, as `x509.KeyUsageFlags`), if present. */
  readonly keyUsage: number | undefined;
  /** Extended key usage OIDs, if present. */
  readonly extendedKeyUsage: readonly string[] | undefined;
  /** The signature algorithm in the tbsCertificate and outside it, exact DER bytes. */
  readonly innerSignatureAlgorithm: Uint8Array;
  readonly signatureAlgorithm: Uint8Array;
  /** The signature BIT STRING's content (for ECDSA: a DER ECDSA-Sig-Value). */
  readonly signatureValue: Uint8Array;
}

const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  version: 0xa0,
  extensions: 0xa3,
} as const;

const OID = {
  commonName: "2.5.4.3",
  ecPublicKey: "1.2.840.10045.2.1",
  p256: "1.2.840.10045.3.1.7",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
} as const;

/** One TLV: where its content starts and ends, and where the whole element started. */
interface Element {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads consecutive DER elements from `bytes[from, to)`. */
class Reader {
  #bytes: Uint8Array;
  #pos: number;
  #end: number;

  constructor(bytes: Uint8Array, from = 0, to = bytes.length) {
    this.#bytes = bytes;
    this.#pos = from;
    this.#end = to;
  }

  get done(): boolean {
    return this.#pos >= this.#end;
  }

  /** The next element's tag, or undefined at the end. */
  peek(): number | undefined {
    return this.done ? undefined : this.#bytes[this.#pos];
  }

  /** Reads the next element, which must have tag `tag`. */
  read(tag: number, what: string): Element {
    const bytes = this.#bytes;
    const start = this.#pos;
    if (start >= this.#end) throw new DerError(`${what} is missing`);
    const actual = bytes[start]!;
    if (actual !== tag) {
      throw new DerError(`${what} has tag 0x${actual.toString(16)}, not 0x${tag.toString(16)}`);
    }
    let pos = start + 1;
    if (pos >= this.#end) throw new DerError(`${what} is truncated`);
    const first = bytes[pos++]!;
    let length = first;
    if (first & 0x80) {
      const count = first & 0x7f;
      // 0x80 is BER's indefinite length; four length bytes are far more than a certificate needs.
      if (count === 0 || count > 3) throw new DerError(`${what} has an unsupported length form`);
      if (pos + count > this.#end) throw new DerError(`${what} is truncated`);
      if (bytes[pos] === 0) throw new DerError(`${what} has a non-minimal length`);
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[pos++]!;
      if (length < 0x80) throw new DerError(`${what} has a non-minimal length`);
    }
    const end = pos + length;
    if (end > this.#end) throw new DerError(`${what} is truncated`);
    this.#pos = end;
    return { tag, start, contentStart: pos, end };
  }

  /** Reads the next element if it has tag `tag`. */
  optional(tag: number, what: string): Element | undefined {
    return this.peek() === tag ? this.read(tag, what) : undefined;
  }

  /** Reads the next element whatever its tag (a single-byte tag, as every tag here is). */
  any(what: string): Element {
    const tag = this.peek();
    if (tag === undefined) throw new DerError(`${what} is missing`);
    // Tag number 31 announces a multi-byte tag, which nothing in the profile uses.
    if ((tag & 0x1f) === 0x1f) throw new DerError(`${what} has a multi-byte tag`);
    return this.read(tag, what);
  }

  /** Fails unless every byte was read. */
  finish(what: string): void {
    if (this.#pos !== this.#end) throw new DerError(`${what} has trailing bytes`);
  }
}

function inside(bytes: Uint8Array, element: Element): Reader {
  return new Reader(bytes, element.contentStart, element.end);
}

function content<T extends ArrayBufferLike>(bytes: Uint8Array<T>, element: Element): Uint8Array<T> {
  return bytes.subarray(element.contentStart, element.end);
}

function whole(bytes: Uint8Array, element: Element): Uint8Array {
  return bytes.subarray(element.start, element.end);
}

/** The content of a DER INTEGER, checked minimal; `what` names it in errors. */
function integerContent(bytes: Uint8Array, element: Element, what: string): Uint8Array {
  const value = content(bytes, element);
  if (value.length === 0) throw new DerError(`${what} is empty`);
  if (
    value.length > 1 &&
    ((value[0] === 0x00 && value[1]! < 0x80) || (value[0] === 0xff && value[1]! >= 0x80))
  ) {
    throw new DerError(`${what} is not minimally encoded`);
  }
  return value;
}

function boolean(bytes: Uint8Array, element: Element, what: string): boolean {
  const value = content(bytes, element);
  if (value.length !== 1 || (value[0] !== 0x00 && value[0] !== 0xff)) {
    throw new DerError(`${what} is not a DER BOOLEAN`);
  }
  return value[0] === 0xff;
}

/** A BIT STRING's bytes after the unused-bits count, which must be zero. */
function octetAlignedBits(
  bytes: Uint8Array<ArrayBuffer>,
  element: Element,
  what: string,
): Uint8Array<ArrayBuffer> {
  const value = content(bytes, element);
  if (value.length === 0 || value[0] !== 0) throw new DerError(`${what} is not whole bytes`);
  return value.subarray(1);
}

function oid(bytes: Uint8Array, element: Element, what: string): string {
  const value = content(bytes, element);
  if (value.length === 0) throw new DerError(`${what} is empty`);
  const arcs: number[] = [];
  let arc = 0;
  let fresh = true;
  for (const byte of value) {
    if (fresh && byte === 0x80) throw new DerError(`${what} is not minimally encoded`);
    fresh = false;
    arc = arc * 128 + (byte & 0x7f);
    if (arc > Number.MAX_SAFE_INTEGER / 128) throw new DerError(`${what} has an arc too large`);
    if (byte & 0x80) continue;
    if (arcs.length === 0) {
      const top = arc < 40 ? 0 : arc < 80 ? 1 : 2;
      arcs.push(top, arc - 40 * top);
    } else {
      arcs.push(arc);
    }
    arc = 0;
    fresh = true;
  }
  if (!fresh) throw new DerError(`${what} is truncated`);
  return arcs.join(".");
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function directoryString(bytes: Uint8Array, element: Element, what: string): string {
  const value = content(bytes, element);
  if (element.tag === TAG.utf8String) {
    try {
      return utf8.decode(value);
    } catch (cause) {
      throw new DerError(`${what} is not UTF-8`, { cause });
    }
  }
  const text = String.fromCharCode(...value);
  if (element.tag === TAG.printableString && PRINTABLE.test(text)) return text;
  if (element.tag === TAG.ia5String && value.every((b) => b < 0x80)) return text;
  throw new DerError(`${what} is not a UTF8String, PrintableString or IA5String`);
}

/** Reads a Name, returning the CN values; the caller keeps the exact bytes. */
function commonNamesOf(bytes: Uint8Array, name: Element, what: string): string[] {
  const names: string[] = [];
  const rdns = inside(bytes, name);
  while (!rdns.done) {
    const rdn = rdns.read(TAG.set, `${what} RDN`);
    const attributes = inside(bytes, rdn);
    if (attributes.done) throw new DerError(`${what} has an empty RDN`);
    while (!attributes.done) {
      const attribute = inside(bytes, attributes.read(TAG.sequence, `${what} attribute`));
      const type = oid(bytes, attribute.read(TAG.oid, `${what} attribute type`), `${what} type`);
      const value = attribute.any(`${what} attribute value`);
      attribute.finish(`${what} attribute`);
      if (type === OID.commonName) names.push(directoryString(bytes, value, `${what} CN`));
    }
  }
  return names;
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ, as RFC 5280 §4.1.2.5 fixes them. */
function time(bytes: Uint8Array, reader: Reader, what: string): number {
  const tag = reader.peek();
  const element = reader.read(tag === TAG.generalizedTime ? tag : TAG.utcTime, what);
  const text = String.fromCharCode(...content(bytes, element));
  const match = element.tag === TAG.utcTime
    ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text)
    : /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
  if (!match) throw new DerError(`${what} is not a DER time`);
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fullYear = element.tag === TAG.utcTime ? (year < 50 ? 2000 + year : 1900 + year) : year;
  const date = new Date(0);
  date.setUTCFullYear(fullYear, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  // Date rolls 31 February into March; a time that does not round-trip is not a time.
  if (
    date.getUTCFullYear() !== fullYear || date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day || date.getUTCHours() !== hour ||
    date.getUTCMinutes() !== minute || date.getUTCSeconds() !== second
  ) {
    throw new DerError(`${what} is not a valid time`);
  }
  return date.getTime();
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

interface ExtensionFacts {
  extensions: ExtensionEntry[];
  isCa: boolean;
  keyUsage: number | undefined;
  extendedKeyUsage: string[] | undefined;
}

/** The single element an extension's OCTET STRING holds. */
function extensionValue(bytes: Uint8Array, value: Element, tag: number, what: string): Element {
  const reader = inside(bytes, value);
  const element = reader.read(tag, what);
  reader.finish(what);
  return element;
}

function readExtensions(bytes: Uint8Array, wrapper: Element): ExtensionFacts {
  const facts: ExtensionFacts = {
    extensions: [],
    isCa: false,
    keyUsage: undefined,
    extendedKeyUsage: undefined,
  };
  const outer = inside(bytes, wrapper);
  const list = inside(bytes, outer.read(TAG.sequence, "extensions"));
  outer.finish("extensions");
  if (list.done) throw new DerError("extensions are empty");
  // The first copy of an extension is the one read; a second copy is refused
  // by the policy before anything relies on either.
  const seen = new Set<string>();
  while (!list.done) {
    const extension = inside(bytes, list.read(TAG.sequence, "extension"));
    const id = oid(bytes, extension.read(TAG.oid, "extension id"), "extension id");
    const flag = extension.optional(TAG.boolean, `extension ${id} criticality`);
    const critical = flag !== undefined && boolean(bytes, flag, `extension ${id} criticality`);
    // DER omits a DEFAULT value: an explicit FALSE is not DER.
    if (flag !== undefined && !critical) {
      throw new DerError(`extension ${id} has an explicit non-critical flag`);
    }
    const value = extension.read(TAG.octetString, `extension ${id} value`);
    extension.finish(`extension ${id}`);
    facts.extensions.push({ id, critical });
    if (seen.has(id)) continue;
    seen.add(id);
    if (id === OID.basicConstraints) {
      const fields = inside(bytes, extensionValue(bytes, value, TAG.sequence, "basic constraints"));
      const ca = fields.optional(TAG.boolean, "basic constraints CA flag");
      facts.isCa = ca !== undefined && boolean(bytes, ca, "basic constraints CA flag");
      if (ca !== undefined && !facts.isCa) {
        throw new DerError("basic constraints have an explicit CA flag FALSE");
      }
      const pathLength = fields.optional(TAG.integer, "basic constraints path length");
      if (pathLength !== undefined) {
        const value = integerContent(bytes, pathLength, "basic constraints path length");
        if (value[0]! >= 0x80) throw new DerError("basic constraints path length is negative");
      }
      fields.finish("basic constraints");
    } else if (id === OID.keyUsage) {
      const bits = content(bytes, extensionValue(bytes, value, TAG.bitString, "key usage"));
      const unused = bits[0];
      if (unused === undefined || unused > 7 || (bits.length === 1 && unused !== 0)) {
        throw new DerError("key usage is not a DER BIT STRING");
      }
      if (bits.length > 1 && (bits[bits.length - 1]! & ((1 << unused) - 1)) !== 0) {
        throw new DerError("key usage sets unused bits");
      }
      // Bits past decipherOnly (bit 8) name no usage; they are kept out of the number.
      let usage = 0;
      for (let bit = 0; bit < 9 && bit < (bits.length - 1) * 8; bit++) {
        if ((bits[1 + (bit >> 3)]! >> (7 - (bit & 7))) & 1) usage |= 1 << bit;
      }
      facts.keyUsage = usage;
    } else if (id === OID.extKeyUsage) {
      const purposes = inside(bytes, extensionValue(bytes, value, TAG.sequence, "EKU"));
      const oids: string[] = [];
      while (!purposes.done) oids.push(oid(bytes, purposes.read(TAG.oid, "EKU purpose"), "EKU"));
      if (oids.length === 0) throw new DerError("extended key usage is empty");
      facts.extendedKeyUsage = oids;
    }
  }
  return facts;
}

/** Reads an AlgorithmIdentifier: its OID and its parameters element, if any. */
function algorithm(
  bytes: Uint8Array,
  reader: Reader,
  what: string,
): { element: Element; id: string; parameters: Element | undefined } {
  const element = reader.read(TAG.sequence, what);
  const fields = inside(bytes, element);
  const id = oid(bytes, fields.read(TAG.oid, `${what} id`), `${what} id`);
  const parameters = fields.done ? undefined : fields.any(`${what} parameters`);
  fields.finish(what);
  return { element, id, parameters };
}

/**
 * Reads a DER certificate. Throws a {@linkcode DerError} unless `der` is
 * exactly one Certificate of the profile: X.509 v3 with extensions, no
 * unique identifiers, every length and integer minimal, nothing after it.
 * The returned fields and the bytes behind them are sumshare's own copy.
 */
export function readCertificate(der: Uint8Array): CertificateFields {
  const bytes = der.slice();
  const top = new Reader(bytes);
  const certificate = top.read(TAG.sequence, "certificate");
  top.finish("certificate");
  const outer = inside(bytes, certificate);
  const tbsElement = outer.read(TAG.sequence, "tbsCertificate");
  const outerAlgorithm = algorithm(bytes, outer, "signature algorithm");
  const signature = outer.read(TAG.bitString, "signature");
  outer.finish("certificate");

  const tbs = inside(bytes, tbsElement);
  const version = inside(bytes, tbs.read(TAG.version, "version"));
  const versionValue = integerContent(bytes, version.read(TAG.integer, "version"), "version");
  version.finish("version");
  if (versionValue.length !== 1 || versionValue[0] !== 2) throw new DerError("version is not v3");
  let serial = integerContent(bytes, tbs.read(TAG.integer, "serial number"), "serial number");
  if (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  const innerAlgorithm = algorithm(bytes, tbs, "tbs signature algorithm");
  const issuer = tbs.read(TAG.sequence, "issuer");
  commonNamesOf(bytes, issuer, "issuer"); // read for well-formedness only
  const validity = inside(bytes, tbs.read(TAG.sequence, "validity"));
  const notBefore = time(bytes, validity, "notBefore");
  const notAfter = time(bytes, validity, "notAfter");
  validity.finish("validity");
  const subject = tbs.read(TAG.sequence, "subject");
  const commonNames = commonNamesOf(bytes, subject, "subject");
  const spki = inside(bytes, tbs.read(TAG.sequence, "subject public key info"));
  const keyAlgorithm = algorithm(bytes, spki, "key algorithm");
  const publicKey = octetAlignedBits(
    bytes,
    spki.read(TAG.bitString, "subject public key"),
    "subject public key",
  );
  spki.finish("subject public key info");
  const p256 = keyAlgorithm.id === OID.ecPublicKey && keyAlgorithm.parameters?.tag === TAG.oid &&
    oid(bytes, keyAlgorithm.parameters, "curve") === OID.p256;
  const extensions = readExtensions(bytes, tbs.read(TAG.extensions, "extensions"));
  tbs.finish("tbsCertificate");

  return Object.freeze({
    der: bytes,
    // Views into the one copy: a `--serve` process keeps these per certificate.
    tbs: bytes.subarray(tbsElement.start, tbsElement.end),
    serial: toHex(serial),
    issuer: whole(bytes, issuer),
    subject: whole(bytes, subject),
    commonNames: Object.freeze(commonNames),
    notBefore,
    notAfter,
    p256,
    publicKey,
    extensions: Object.freeze(extensions.extensions.map((e) => Object.freeze(e))),
    isCa: extensions.isCa,
    keyUsage: extensions.keyUsage,
    extendedKeyUsage: extensions.extendedKeyUsage && Object.freeze(extensions.extendedKeyUsage),
    innerSignatureAlgorithm: whole(bytes, innerAlgorithm.element),
    signatureAlgorithm: whole(bytes, outerAlgorithm.element),
    signatureValue: octetAlignedBits(bytes, signature, "signature"),
  });
}

/**
 * Converts a DER ECDSA-Sig-Value (SEQUENCE of the INTEGERs r and s) to the
 * 64-byte r‖s Web Crypto verifies for P-256. Refuses, with a
 * {@linkcode DerError}, anything but the one DER encoding of a pair of
 * positive integers below 2^256: a second encoding of the same signature would
 * make certificates malleable.
 */
export function ecdsaSignatureToP1363(signature: Uint8Array): Uint8Array<ArrayBuffer> {
  const top = new Reader(signature);
  const sequence = inside(signature, top.read(TAG.sequence, "ECDSA signature"));
  top.finish("ECDSA signature");
  const out = new Uint8Array(64);
  for (const [index, name] of ["r", "s"].entries()) {
    let value = integerContent(
      signature,
      sequence.read(TAG.integer, `ECDSA ${name}`),
      `ECDSA ${name}`,
    );
    if (value[0]! >= 0x80) throw new DerError(`ECDSA ${name} is negative`);
    if (value[0] === 0 && value.length > 1) value = value.subarray(1);
    if (value.length > 32) throw new DerError(`ECDSA ${name} is longer than 32 bytes`);
    out.set(value, 32 * index + 32 - value.length);
  }
  sequence.finish("ECDSA signature");
  return out;
}

/** The exact DER bytes of the AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758: no parameters). */
export const ECDSA_WITH_SHA256 = Uint8Array.of(
  0x30,
  0x0a,
  0x06,
  0x08,
  0x2a,
  0x86,
  0x48,
  0xce,
  0x3d,
  0x04,
  0x03,
  0x02,
);

/** Whether two byte strings are equal (public data: no constant time needed). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
