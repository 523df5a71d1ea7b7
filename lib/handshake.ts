/**
 * Application-layer mutual authentication, run on every connection right
 * after TLS.
 *
 * TLS proves the server's certificate chains to a trusted root, but the
 * servers ask for no client certificate, Deno's clients also trust their
 * built-in roots, and no channel binding is exposed. So both identities are
 * proven here, and the rest of the connection is sealed under keys only the
 * two authenticated parties hold (see channel.ts):
 *
 *     server → client  hello   { from: S, nonce: Ns, key: Es }
 *     client → server  auth    { from: C, to: S, nonce: Nc, key: Ec, cert: C's cert,
 *                                sig_C(["client", Ns, Nc, C, S, certC, Es, Ec]) }
 *     server → client  welcome { from: S, to: C, cert: S's cert,
 *                                sig_S(["server", Ns, Nc, C, S, certS, Es, Ec]) }
 *     … every later message AES-GCM sealed with keys from ECDH(Es, Ec)
 *
 * Fresh nonces and ephemeral keys make every transcript unique, so a recorded
 * handshake cannot be replayed; each side checks the other's certificate
 * chain, that its CN is the claimed name, and the signature, which covers
 * both ephemeral keys, so nobody in the middle can substitute its own.
 *
 * @module
 */

import {
  deriveChannel,
  type EphemeralKey,
  generateEphemeralKey,
  type SealedChannel,
} from "./channel.ts";
import { randomHex, toBase64 } from "./encoding.ts";
import { AuthError, describeError, ProtocolError } from "./errors.ts";
import {
  type Identity,
  signTranscript,
  transcript,
  type VerifiedParty,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import type { Message, MessageOf, MessageType } from "./messages.ts";
import type { MessageConnection } from "./transport.ts";

/** SHA-256 of the handshake's public values: the channel keys' HKDF salt. */
async function channelSalt(fields: readonly string[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", transcript("channel", fields)));
}

async function channelFor(
  own: EphemeralKey,
  otherKey: Uint8Array,
  fields: readonly string[],
  role: "client" | "server",
): Promise<SealedChannel> {
  return await deriveChannel(own, otherKey, await channelSalt(fields), role);
}

/** A fresh 256-bit nonce, as 64 lowercase hex digits. */
function randomNonce(): string {
  return randomHex(32);
}

/**
 * Receives the next message and requires it to be of type `type`. A `refuse`
 * from the other side becomes an {@linkcode AuthError} carrying its reason.
 */
export async function expectMessage<T extends MessageType>(
  conn: MessageConnection,
  type: T,
  signal: AbortSignal,
): Promise<MessageOf<T>> {
  const message: Message = await conn.receive(signal);
  if (message.type === "refuse") throw new AuthError(`Refused: ${message.reason}`);
  if (message.type !== type) {
    throw new ProtocolError(`Unexpected message: expected ${type}, got ${message.type}`);
  }
  return message as unknown as MessageOf<T>;
}

/** Sends `refuse` with the reason (best effort), then closes. */
export async function refuse(conn: MessageConnection, reason: string): Promise<void> {
  try {
    await conn.send({ type: "refuse", reason: reason.slice(0, 1000) }, AbortSignal.timeout(2000));
  } catch {
    // The other side may already be gone; the refusal is a courtesy.
  } finally {
    conn.close();
  }
}

async function refuseOnError<T>(conn: MessageConnection, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AuthError || error instanceof ProtocolError) {
      // Tell the other side why, unless it was the one that refused.
      if (!error.message.startsWith("Refused:")) await refuse(conn, describeError(error));
    }
    conn.close();
    throw error;
  }
}

/** Runs the server side; returns the authenticated client. */
export function serverHandshake(
  conn: MessageConnection,
  identity: Identity,
  signal: AbortSignal,
): Promise<VerifiedParty> {
  return refuseOnError(conn, async () => {
    const serverNonce = randomNonce();
    const ephemeral = await generateEphemeralKey();
    await conn.send(
      { type: "hello", from: identity.name, nonce: serverNonce, key: ephemeral.publicKey },
      signal,
    );
    const auth = await expectMessage(conn, "auth", signal);
    if (auth.to !== identity.name) {
      throw new AuthError(
        `Connection meant for ${JSON.stringify(auth.to)} reached ${JSON.stringify(identity.name)}`,
      );
    }
    if (auth.from === identity.name) throw new AuthError("Client claims the server's own name");
    const keys = [toBase64(ephemeral.publicKey), toBase64(auth.key)];
    const names = [serverNonce, auth.nonce, auth.from, identity.name];
    const serverFields = ["server", ...names, identity.certPem, ...keys];
    // Check the client while preparing the answer; nothing is sent unless the check passes.
    const [client, sig, channel] = await Promise.all([
      (async () => {
        const client = await verifyPartyCertificate(auth.cert, identity.ca, auth.from);
        const clientFields = ["client", ...names, auth.cert, ...keys];
        if (!(await verifyTranscript(client.publicKey, auth.sig, "handshake", clientFields))) {
          throw new AuthError(`Invalid handshake signature from ${JSON.stringify(auth.from)}`);
        }
        return client;
      })(),
      signTranscript(identity.privateKey, "handshake", serverFields),
      channelFor(ephemeral, auth.key, [...names, ...keys], "server"),
    ]);
    await conn.send({
      type: "welcome",
      from: identity.name,
      to: auth.from,
      cert: identity.certPem,
      sig,
    }, signal);
    conn.secure(channel);
    return client;
  });
}

/** Runs the client side against a server that must be `serverName`. */
export function clientHandshake(
  conn: MessageConnection,
  identity: Identity,
  serverName: string,
  signal: AbortSignal,
): Promise<VerifiedParty> {
  return refuseOnError(conn, async () => {
    // Make the ephemeral key while the server's hello is on its way.
    const ephemeralKey = generateEphemeralKey();
    ephemeralKey.catch(() => {});
    const hello = await expectMessage(conn, "hello", signal);
    if (hello.from !== serverName) {
      throw new AuthError(
        `Expected to reach ${JSON.stringify(serverName)} but the server says it is ${
          JSON.stringify(hello.from)
        }`,
      );
    }
    const clientNonce = randomNonce();
    const ephemeral = await ephemeralKey;
    const keys = [toBase64(hello.key), toBase64(ephemeral.publicKey)];
    const names = [hello.nonce, clientNonce, identity.name, serverName];
    await conn.send({
      type: "auth",
      from: identity.name,
      to: serverName,
      nonce: clientNonce,
      key: ephemeral.publicKey,
      cert: identity.certPem,
      sig: await signTranscript(identity.privateKey, "handshake", [
        "client",
        ...names,
        identity.certPem,
        ...keys,
      ]),
    }, signal);
    const welcome = await expectMessage(conn, "welcome", signal);
    if (welcome.from !== serverName || welcome.to !== identity.name) {
      throw new AuthError("Server's welcome names the wrong parties");
    }
    const serverFields = ["server", ...names, welcome.cert, ...keys];
    const [server, channel] = await Promise.all([
      (async () => {
        const server = await verifyPartyCertificate(welcome.cert, identity.ca, serverName);
        if (!(await verifyTranscript(server.publicKey, welcome.sig, "handshake", serverFields))) {
          throw new AuthError(`Invalid handshake signature from ${JSON.stringify(serverName)}`);
        }
        return server;
      })(),
      channelFor(ephemeral, hello.key, [...names, ...keys], "client"),
    ]);
    conn.secure(channel);
    return server;
  });
}
