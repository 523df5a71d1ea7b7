/**
 * The application-layer handshake over real TLS, in one process: a server
 * with the project's listener and clients that are honest, impostors or
 * broken.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthError } from "../lib/errors.ts";
import { clientHandshake, serverHandshake } from "../lib/handshake.ts";
import { type Identity, loadIdentity } from "../lib/identity.ts";
import { connectTls, listenTls, type MessageConnection } from "../lib/transport.ts";
import { makePki, removeDir } from "./helpers.ts";

const LISTEN = { handshakeTimeoutMs: 5000 };

async function identityFrom(
  dir: string,
  name: string,
  caDir = dir,
  certName = name,
): Promise<Identity> {
  return await loadIdentity(name, {
    ca: join(caDir, "ca.crt"),
    cert: join(dir, `${certName}.crt`),
    key: join(dir, `${certName}.key`),
  });
}

/** Runs one server handshake and one client handshake against each other. */
async function handshakePair(server: Identity, client: Identity, expectServer = server.name) {
  const listener = await listenTls(
    { hostname: "127.0.0.1", port: 0 },
    server.certPem,
    server.keyPem,
    LISTEN,
  );
  const signal = AbortSignal.timeout(10_000);
  const accepted = (async () => {
    for await (const conn of listener.accept()) {
      try {
        await conn.handshake(signal);
        return await serverHandshake(conn, server, signal);
      } finally {
        conn.close();
      }
    }
    throw new Error("listener closed");
  })();
  const conn = await connectTls(listener.address, client.caPem, signal);
  try {
    const [s, c] = await Promise.allSettled([
      accepted,
      clientHandshake(conn, client, expectServer, signal),
    ]);
    return { server: s, client: c };
  } finally {
    conn.close();
    listener.close();
  }
}

Deno.test("honest parties authenticate each other", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const { server, client } = await handshakePair(
      await identityFrom(dir, "hospital"),
      await identityFrom(dir, "alice"),
    );
    assert.equal(server.status === "fulfilled" && server.value.name, "alice");
    assert.equal(client.status === "fulfilled" && client.value.name, "hospital");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a client whose certificate is from another CA is refused, and told why", async () => {
  const dir = await makePki(["hospital", "alice"]);
  const other = await makePki(["alice"]);
  try {
    // The impostor trusts our CA (so TLS to the server works) but holds a key
    // certified by a different CA. Load it by hand: loadIdentity would refuse.
    const honest = await identityFrom(dir, "alice");
    const foreign = await identityFrom(other, "alice");
    const impostor: Identity = { ...foreign, ca: honest.ca, caPem: honest.caPem };
    const { server, client } = await handshakePair(await identityFrom(dir, "hospital"), impostor);
    assert.equal(server.status, "rejected");
    assert.match(
      String((server as PromiseRejectedResult).reason),
      /not issued by the consortium CA/,
    );
    assert.match(
      String((client as PromiseRejectedResult).reason),
      /Refused: .*not issued by the consortium CA/,
    );
  } finally {
    await removeDir(dir);
    await removeDir(other);
  }
});

Deno.test("a client claiming a name that is not its certificate's is refused", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const alice = await identityFrom(dir, "alice");
    const claimsBob: Identity = { ...alice, name: "bob" };
    const { server, client } = await handshakePair(await identityFrom(dir, "hospital"), claimsBob);
    assert.match(
      String((server as PromiseRejectedResult).reason),
      /Name mismatch: party claims "bob".*"alice"/,
    );
    assert.ok((client as PromiseRejectedResult).reason instanceof AuthError);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a client reaching the wrong server refuses it", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const { client } = await handshakePair(
      await identityFrom(dir, "bob"),
      await identityFrom(dir, "alice"),
      "hospital",
    );
    assert.match(
      String((client as PromiseRejectedResult).reason),
      /Expected to reach "hospital".*"bob"/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("TLS to a server whose certificate is from another CA fails", async () => {
  const dir = await makePki(["hospital", "alice"]);
  const other = await makePki(["hospital"]);
  try {
    const rogue = await identityFrom(other, "hospital");
    const listener = await listenTls(
      { hostname: "127.0.0.1", port: 0 },
      rogue.certPem,
      rogue.keyPem,
      LISTEN,
    );
    const serving = (async () => {
      for await (const conn of listener.accept()) {
        await conn.handshake(AbortSignal.timeout(5000)).catch(() => {});
        conn.close();
      }
    })();
    const alice = await identityFrom(dir, "alice");
    await assert.rejects(
      connectTls(listener.address, alice.caPem, AbortSignal.timeout(5000)),
      /certificate|UnknownIssuer/i,
    );
    listener.close();
    await serving;
  } finally {
    await removeDir(dir);
    await removeDir(other);
  }
});

Deno.test("a server that says nothing makes the client time out, not hang", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const hospital = await identityFrom(dir, "hospital");
    const listener = await listenTls(
      { hostname: "127.0.0.1", port: 0 },
      hospital.certPem,
      hospital.keyPem,
      LISTEN,
    );
    const held: MessageConnection[] = [];
    const serving = (async () => {
      for await (const conn of listener.accept()) {
        await conn.handshake(AbortSignal.timeout(5000));
        held.push(conn);
      }
    })();
    const alice = await identityFrom(dir, "alice");
    const conn = await connectTls(listener.address, alice.caPem, AbortSignal.timeout(5000));
    const started = performance.now();
    await assert.rejects(
      clientHandshake(conn, alice, "hospital", AbortSignal.timeout(300)),
      /Timed out|abort/i,
    );
    assert.ok(performance.now() - started < 3000);
    conn.close();
    listener.close();
    for (const c of held) c.close();
    await serving;
  } finally {
    await removeDir(dir);
  }
});
