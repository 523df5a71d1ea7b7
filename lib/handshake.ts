/**
 * Application-layer mutual authentication, run on every connection right
 * after TLS.
 *
 * TLS already proves the server's certificate chains to the consortium CA,
 * but `Deno.listenTls` cannot ask for a client certificate, so the client's
 * identity is proven here, and the server's name is bound too:
 *
 *     server → client  hello   { from: S, nonce: Ns }
 *     client → server  auth    { from: C, to: S, nonce: Nc, cert: C's cert,
 *                                sig_C(["client", Ns, Nc, C, S, certC]) }
 *     server → client  welcome { from: S, to: C, cert: S's cert,
 *                                sig_S(["server", Ns, Nc, C, S, certS]) }
 *
 * Fresh nonces from both sides make every transcript unique, so a recorded
 * handshake cannot be replayed; each side checks the other's certificate
 * chain, that its CN is the claimed name, and the signature.
 *
 * @module
 */

import { AuthError, describeError, ProtocolError } from "./errors.ts";
import {
  type Identity,
  signTranscript,
  type VerifiedParty,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import type { Message, MessageOf, MessageType } from "./messages.ts";
import type { MessageConnection } from "./transport.ts";

function randomNonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
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
    await conn.send({ type: "hello", from: identity.name, nonce: serverNonce }, signal);
    const auth = await expectMessage(conn, "auth", signal);
    if (auth.to !== identity.name) {
      throw new AuthError(
        `Connection meant for ${JSON.stringify(auth.to)} reached ${JSON.stringify(identity.name)}`,
      );
    }
    if (auth.from === identity.name) throw new AuthError("Client claims the server's own name");
    const client = await verifyPartyCertificate(auth.cert, identity.ca, auth.from);
    const clientFields = ["client", serverNonce, auth.nonce, auth.from, auth.to, auth.cert];
    if (!(await verifyTranscript(client.publicKey, auth.sig, "handshake", clientFields))) {
      throw new AuthError(`Invalid handshake signature from ${JSON.stringify(auth.from)}`);
    }
    const serverFields = [
      "server",
      serverNonce,
      auth.nonce,
      auth.from,
      identity.name,
      identity.certPem,
    ];
    await conn.send({
      type: "welcome",
      from: identity.name,
      to: auth.from,
      cert: identity.certPem,
      sig: await signTranscript(identity.privateKey, "handshake", serverFields),
    }, signal);
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
    const hello = await expectMessage(conn, "hello", signal);
    if (hello.from !== serverName) {
      throw new AuthError(
        `Expected to reach ${JSON.stringify(serverName)} but the server says it is ${
          JSON.stringify(hello.from)
        }`,
      );
    }
    const clientNonce = randomNonce();
    const clientFields = [
      "client",
      hello.nonce,
      clientNonce,
      identity.name,
      serverName,
      identity.certPem,
    ];
    await conn.send({
      type: "auth",
      from: identity.name,
      to: serverName,
      nonce: clientNonce,
      cert: identity.certPem,
      sig: await signTranscript(identity.privateKey, "handshake", clientFields),
    }, signal);
    const welcome = await expectMessage(conn, "welcome", signal);
    if (welcome.from !== serverName || welcome.to !== identity.name) {
      throw new AuthError("Server's welcome names the wrong parties");
    }
    const server = await verifyPartyCertificate(welcome.cert, identity.ca, serverName);
    const serverFields = [
      "server",
      hello.nonce,
      clientNonce,
      identity.name,
      serverName,
      welcome.cert,
    ];
    if (!(await verifyTranscript(server.publicKey, welcome.sig, "handshake", serverFields))) {
      throw new AuthError(`Invalid handshake signature from ${JSON.stringify(serverName)}`);
    }
    return server;
  });
}
