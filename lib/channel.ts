/**
 * The authenticated channel every connection switches to after the handshake.
 *
 * TLS alone is not enough here: `Deno.connectTls({ caCerts })` adds the
 * consortium CA to Deno's built-in roots rather than replacing them, and a
 * `Deno.TlsConn` exposes no channel binding, so a party in the middle holding
 * any certificate TLS accepts could relay our signed handshake and then read
 * or change what follows. So each side also sends an ephemeral ECDH P-256
 * key, both keys are covered by both handshake signatures, and every later
 * message is sealed with AES-256-GCM under keys derived (HKDF-SHA-256) from
 * that exchange. Only the two authenticated parties hold those keys.
 *
 * Nonces are per-direction message counters, so a replayed, dropped,
 * reordered or altered message fails authentication.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

const ECDH_P256 = { name: "ECDH", namedCurve: "P-256" } as const;

/** Bytes of an uncompressed P-256 public key. */
export const EPHEMERAL_KEY_BYTES = 65;

/** Bytes an AES-GCM tag adds to each sealed message. */
export const SEAL_OVERHEAD_BYTES = 16;

/** A fresh ECDH key pair for one connection. */
export interface EphemeralKey {
  privateKey: CryptoKey;
  /** The public key, uncompressed (0x04 ‖ X ‖ Y). */
  publicKey: Uint8Array;
}

/** Generates an ephemeral ECDH P-256 key pair. */
export async function generateEphemeralKey(): Promise<EphemeralKey> {
  const pair = await crypto.subtle.generateKey(ECDH_P256, false, ["deriveBits"]);
  return {
    privateKey: pair.privateKey,
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
  };
}

/** The direction labels, so the two directions never share a key. */
const CLIENT_TO_SERVER = new TextEncoder().encode("sumshare/1 client to server");
const SERVER_TO_CLIENT = new TextEncoder().encode("sumshare/1 server to client");

/**
 * Derives this side's channel from its ephemeral private key, the other
 * side's ephemeral public key and a hash of the handshake transcript.
 */
export async function deriveChannel(
  own: EphemeralKey,
  otherPublicKey: Uint8Array,
  transcriptHash: Uint8Array,
  role: "client" | "server",
): Promise<SealedChannel> {
  let other: CryptoKey;
  try {
    other = await crypto.subtle.importKey(
      "raw",
      otherPublicKey as Uint8Array<ArrayBuffer>,
      ECDH_P256,
      false,
      [],
    );
  } catch (cause) {
    throw new ProtocolError("Invalid ephemeral key: not a P-256 point", { cause });
  }
  const shared = await crypto.subtle.deriveBits(
    { name: "ECDH", public: other },
    own.privateKey,
    256,
  );
  const base = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  const derive = (info: Uint8Array<ArrayBuffer>) =>
    crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: transcriptHash as Uint8Array<ArrayBuffer>, info },
      base,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
  const [toServer, toClient] = await Promise.all([
    derive(CLIENT_TO_SERVER),
    derive(SERVER_TO_CLIENT),
  ]);
  return role === "client"
    ? new SealedChannel(toServer, toClient)
    : new SealedChannel(toClient, toServer);
}

/** AES-GCM sealing with a counter nonce per direction. */
export class SealedChannel {
  #sendKey: CryptoKey;
  #receiveKey: CryptoKey;
  #sent = 0n;
  #received = 0n;

  constructor(sendKey: CryptoKey, receiveKey: CryptoKey) {
    this.#sendKey = sendKey;
    this.#receiveKey = receiveKey;
  }

  /** Encrypts and authenticates the next outgoing message. Call in send order. */
  async seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const iv = counterNonce(this.#sent++);
    return new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv },
        this.#sendKey,
        plaintext as Uint8Array<ArrayBuffer>,
      ),
    );
  }

  /** Decrypts the next incoming message, or throws if it is not exactly what the other side sealed next. */
  async open(ciphertext: Uint8Array): Promise<Uint8Array> {
    const iv = counterNonce(this.#received++);
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv },
          this.#receiveKey,
          ciphertext as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch (cause) {
      throw new ProtocolError("Message failed authentication: altered, replayed or out of order", {
        cause,
      });
    }
  }
}

/** A 96-bit GCM nonce: 4 zero bytes and a 64-bit big-endian counter. */
function counterNonce(counter: bigint): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, counter);
  return iv;
}
