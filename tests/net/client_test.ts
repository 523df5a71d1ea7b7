/**
 * A peer connecting (lib/net/client.ts) and the hospital listening
 * (lib/net/server.ts) when something is wrong, as each side reads it: a
 * refused port, a server that never answers (the handshake deadline), a
 * hospital certificate for another host, from another CA, or expired; a
 * busy listen address; an address the program has no permission for;
 * credentials that cannot be used. Each failure is a TransportError whose
 * one-line message says what happened and what to check, with the system's
 * own text kept only as `cause`.
 */
import assert from "node:assert/strict";
import { connect } from "../../lib/net/client.ts";
import { TransportError } from "../../lib/net/errors.ts";
import { listen } from "../../lib/net/server.ts";
import {
  closeQuietly,
  connectAs,
  deadline,
  issueCertificate,
  party,
  startServer,
  testAuthorize,
  testPki,
} from "./helpers.ts";

const pki = await testPki();

/** Messages must not carry the raw texts users used to see. */
function assertPlain(message: string): void {
  assert.doesNotMatch(message, /\n/, "one line");
  assert.doesNotMatch(
    message,
    /BadSignature|DecryptError|close_notify|docs\.rs|socket hang up|os error|Bad resource|UnknownIssuer|NotValidForName/,
    message,
  );
  assert.doesNotMatch(message, /\bbug\b/, "not a bug");
}

async function failure(promise: Promise<unknown>): Promise<TransportError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof TransportError, `expected a TransportError, got ${error}`);
  assertPlain(error.message);
  return error;
}

Deno.test("nothing listening: connection refused, check the address and that the hospital runs", async () => {
  using time = deadline(20_000);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const alice = party(pki.home, "alice");
  const error = await failure(
    connect({ hostname: "127.0.0.1", port, ca: pki.home.ca.cert, ...alice }, time.signal),
  );
  assert.equal(error.reason, "refused");
  assert.equal(
    error.message,
    `Cannot connect to the hospital at 127.0.0.1:${port}: connection refused (check the address and port, and that the hospital is running)`,
  );
  assert.equal((error.cause as Error).name, "ConnectionRefused");
});

Deno.test("a server that never answers the TLS handshake: cut at handshakeTimeoutMs", async () => {
  using time = deadline(20_000);
  const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (mute.addr as Deno.NetAddr).port;
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of mute) accepted.push(conn);
  })().catch(() => {});
  try {
    const started = performance.now();
    const error = await failure(connect({
      hostname: "127.0.0.1",
      port,
      ca: pki.home.ca.cert,
      ...party(pki.home, "alice"),
      handshakeTimeoutMs: 300,
    }, time.signal));
    const ms = performance.now() - started;
    assert.equal(error.reason, "timeout");
    assert.equal(
      error.message,
      `Cannot connect to the hospital at 127.0.0.1:${port}: no TLS connection within 300 ms (check that the hospital is running and reachable, and not overloaded)`,
    );
    assert.ok(ms >= 290 && ms < 5000, `gave up after ${ms.toFixed(0)} ms`);
    // The caller's own abort wins over the deadline and is reported as itself.
    const stop = new AbortController();
    const pending = connect({
      hostname: "127.0.0.1",
      port,
      ca: pki.home.ca.cert,
      ...party(pki.home, "alice"),
    }, stop.signal);
    stop.abort(new Error("round cancelled"));
    await assert.rejects(pending, /^Error: round cancelled$/);
  } finally {
    mute.close();
    await accepting;
    for (const conn of accepted) closeQuietly(conn);
  }
});

Deno.test("the hospital's certificate names another host: name mismatch on the peer, refusal logged by the hospital", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const elsewhere = await issueCertificate(pki.home, "hospital", { ips: [], dns: ["example.org"] });
  const server = await startServer(pki, elsewhere);
  try {
    const error = await failure(connectAs(pki, server.server, "alice", signal));
    assert.equal(error.reason, "name-mismatch");
    assert.equal(
      error.message,
      `Cannot connect to the hospital at 127.0.0.1:${server.server.port}: the certificate of the hospital does not name host 127.0.0.1 (connect with a host name its certificate names, or reissue it with that host)`,
    );
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "certificate-refused");
    assert.match(refusal.error.message, /: the client refused this party's certificate \(/);
  } finally {
    server.server.close();
  }
});

Deno.test("the peer trusts another CA: untrusted certificate on the peer; the hospital hears it was not verified", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  try {
    const error = await failure(
      connectAs(pki, server.server, "alice", signal, { ca: pki.foreign.ca.cert }),
    );
    assert.equal(error.reason, "untrusted-certificate");
    assert.match(
      error.message,
      /: the certificate of the hospital is not issued by the consortium CA this party trusts \(check that both use the same consortium's ca\.crt\)$/,
    );
    assert.match((error.cause as Error).message, /invalid peer certificate: BadSignature/);
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "certificate-refused");
    assert.match(
      refusal.error.message,
      /could not verify this party's certificate: it trusts another CA/,
    );
    assertPlain(refusal.error.message);
  } finally {
    server.server.close();
  }
});

Deno.test("an expired hospital certificate: the peer says so and points at clocks and renewal", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const expired = await issueCertificate(pki.home, "hospital", {
    notBefore: new Date(Date.now() - 10 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  const server = await startServer(pki, expired);
  try {
    const error = await failure(connectAs(pki, server.server, "alice", signal));
    assert.equal(error.reason, "expired-certificate");
    assert.match(
      error.message,
      /: the certificate of the hospital is expired or not yet valid \(check both machines' clocks/,
    );
  } finally {
    server.server.close();
  }
});

Deno.test("listening on a busy port, or where the program has no permission", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  const hospital = party(pki.home, "hospital");
  const options = {
    ca: pki.home.ca.cert,
    ...hospital,
    authorize: testAuthorize(pki.home.ca.cert),
  };
  try {
    const error = await failure(listen({ hostname: "127.0.0.1", port, ...options }));
    assert.equal(error.reason, "address-in-use");
    assert.equal(
      error.message,
      `Cannot listen on 127.0.0.1:${port}: the address is already in use (another process listens there: stop it or choose another port)`,
    );
  } finally {
    busy.close();
  }
  // Without the permission to listen there, node:net would throw out of reach
  // of any handler; listen() checks first.
  const denied = await listen({ hostname: "192.0.2.1", port: 4000, ...options }).then(
    (server) => {
      server.close();
      return undefined;
    },
    (e) => e,
  );
  assert.ok(denied instanceof TransportError, String(denied));
  assert.equal(denied.reason, "permission");
  assert.equal(
    denied.message,
    "Cannot listen on 192.0.2.1:4000: this program may not use that address (run it with --allow-net for it)",
  );
});

Deno.test("a host the program may not reach (no --allow-net for it) is said so, not thrown raw", async () => {
  using time = deadline(20_000);
  // The test permissions allow only 127.0.0.1 and localhost. (An unknown host
  // name is checked in errors_test.ts, from the text Deno gives.)
  const error = await failure(connect({
    hostname: "no-such-host.invalid",
    port: 4000,
    ca: pki.home.ca.cert,
    ...party(pki.home, "alice"),
  }, time.signal));
  assert.equal(error.reason, "permission");
  assert.equal(
    error.message,
    "Cannot connect to the hospital at no-such-host.invalid:4000: this program may not use that address (run it with --allow-net for it)",
  );
});

Deno.test("unusable credentials are refused at start, not as a TLS failure on every connection", async () => {
  using time = deadline(20_000);
  const hospital = party(pki.home, "hospital");
  const alice = party(pki.home, "alice");
  const authorize = testAuthorize(pki.home.ca.cert);
  const cases: [string, { ca: string; cert: string; key: string }, RegExp][] = [
    [
      "not PEM",
      { ca: pki.home.ca.cert, cert: "garbage", key: hospital.key },
      /this party's certificate is not one PEM certificate \(check the certificate file\)$/,
    ],
    ["two certificates", {
      ca: pki.home.ca.cert,
      cert: hospital.cert + alice.cert,
      key: hospital.key,
    }, /is not one PEM certificate/],
    [
      "a key that is not PEM",
      { ca: pki.home.ca.cert, cert: hospital.cert, key: "garbage" },
      /private key is not one PEM PKCS#8 ECDSA P-256 key \(check the key file\)$/,
    ],
    [
      "another party's key",
      { ca: pki.home.ca.cert, cert: hospital.cert, key: alice.key },
      /private key does not belong to its certificate \(check that both files are the same party's\)$/,
    ],
    [
      "a party's certificate as the CA",
      { ca: alice.cert, cert: hospital.cert, key: hospital.key },
      /the consortium CA certificate is not a CA \(check that the CA file is ca\.crt, not a party's\)$/,
    ],
    [
      "no CA",
      { ca: "", cert: hospital.cert, key: hospital.key },
      /the consortium CA certificate is not one PEM certificate/,
    ],
  ];
  for (const [label, credentials, says] of cases) {
    const listening = await failure(
      listen({ hostname: "127.0.0.1", port: 0, authorize, ...credentials }),
    );
    assert.equal(listening.reason, "credentials", label);
    assert.match(listening.message, /^Cannot listen on 127\.0\.0\.1:0: /, label);
    assert.match(listening.message, says, label);
    const connecting = await failure(
      connect({ hostname: "127.0.0.1", port: 1, ...credentials }, time.signal),
    );
    assert.equal(connecting.reason, "credentials", label);
    assert.match(connecting.message, /^Cannot connect to the hospital at 127\.0\.0\.1:1: /, label);
  }
});
