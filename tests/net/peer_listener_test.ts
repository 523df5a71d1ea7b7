/**
 * The hospital's peer listener (lib/runtime/hospital.ts `listenForPeers`),
 * which `sumshare hospital` and the serving hospital share: a peer whose
 * certificate passes the policy is handed out under its CN, with the
 * certificate it presented recorded; a client presenting the hospital's own
 * name, a certificate with two CNs, or the CA's own certificate (all of
 * which TLS lets through) is refused and never handed out.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { type Identity, loadIdentity } from "../../lib/identity.ts";
import { connect } from "../../lib/net/client.ts";
import type { Connection } from "../../lib/net/connection.ts";
import type { Server } from "../../lib/net/server.ts";
import { writeConsortium } from "../../lib/pki.ts";
import { listenForPeers } from "../../lib/runtime/hospital.ts";
import { deadline, issueCertificate, party, testPki } from "./helpers.ts";

const pki = await testPki();
const dir = await Deno.makeTempDir({ prefix: "sumshare-listener-" });
await writeConsortium(dir, pki.home);
const identity: Identity = await loadIdentity("hospital", {
  ca: join(dir, "ca.crt"),
  cert: join(dir, "hospital.crt"),
  key: join(dir, "hospital.key"),
}, { use: "hospital" });
await Deno.remove(dir, { recursive: true });

/** A listener on 127.0.0.1:0, its log, and what it recorded. */
async function start(): Promise<
  { server: Server; lines: string[]; certificates: Map<string, string> }
> {
  const lines: string[] = [];
  const certificates = new Map<string, string>();
  const server = await listenForPeers(identity, { hostname: "127.0.0.1", port: 0 }, {
    log: (line) => lines.push(line),
    certificates,
  });
  return { server, lines, certificates };
}

function connectWith(
  server: Server,
  pair: { cert: string; key: string },
  signal: AbortSignal,
): Promise<Connection> {
  return connect({
    hostname: "127.0.0.1",
    port: server.port,
    ca: pki.home.ca.cert,
    cert: pair.cert,
    key: pair.key,
  }, signal);
}

/** Waits until the listener has logged a refusal, and returns it. */
async function refusal(lines: string[], signal: AbortSignal): Promise<string> {
  while (!lines.some((line) => line.startsWith("refused"))) {
    signal.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return lines.find((line) => line.startsWith("refused"))!;
}

/** `pair` is refused with a reason matching `reason`, and alice is still accepted after it. */
async function refused(pair: { cert: string; key: string }, reason: RegExp): Promise<void> {
  using time = deadline(20_000);
  const { signal } = time;
  const { server, lines, certificates } = await start();
  let client: Connection | undefined;
  let honest: Connection | undefined;
  let accepted: Connection | undefined;
  try {
    client = await connectWith(server, pair, signal);
    assert.match(await refusal(lines, signal), reason);
    assert.equal(certificates.size, 0, "a refused certificate is not recorded");
    [honest, accepted] = await Promise.all([
      connectWith(server, party(pki.home, "alice"), signal),
      server.accept(signal),
    ]);
    assert.equal(accepted.party, "alice", "the refused client was never handed out");
  } finally {
    client?.close();
    honest?.close();
    accepted?.close();
    server.close();
  }
}

Deno.test("listenForPeers hands out a peer under its CN and records its certificate", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const { server, lines, certificates } = await start();
  let client: Connection | undefined;
  let accepted: Connection | undefined;
  try {
    [client, accepted] = await Promise.all([
      connectWith(server, party(pki.home, "bob"), signal),
      server.accept(signal),
    ]);
    assert.equal(accepted.party, "bob");
    const recorded = certificates.get("bob");
    assert.ok(recorded, "bob's certificate is recorded");
    assert.deepEqual(
      new Uint8Array(new x509.X509Certificate(recorded).rawData),
      new Uint8Array(new x509.X509Certificate(party(pki.home, "bob").cert).rawData),
    );
    assert.deepEqual(lines, []);
  } finally {
    client?.close();
    accepted?.close();
    server.close();
  }
});

Deno.test("listenForPeers refuses a client presenting the hospital's own name", async () => {
  await refused(party(pki.home, "hospital"), /"hospital" is the hospital's own name/);
});

Deno.test("listenForPeers refuses a certificate with two CNs", async () => {
  const pair = await issueCertificate(pki.home, "alice, CN=bob");
  await refused(pair, /it must have exactly one CN/);
});

Deno.test("listenForPeers refuses the CA's own certificate by the party policy", async () => {
  await refused(pki.home.ca, /is a CA certificate, not a party's/);
});
