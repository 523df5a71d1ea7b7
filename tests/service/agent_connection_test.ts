/**
 * The agent's connection to the hospital, in process against a scripted
 * hospital on real mutual TLS (review 3):
 *
 * - F6: a signed INVITE without `deadlines` (optional on the wire) still
 *   bounds every wait: the round ends by itself, timed out.
 * - F7: a hospital that completes the TLS handshake and then refuses the
 *   party (revoked), or accepts it and closes it again at once (as when a
 *   second agent of the same name connects), does not reset the backoff:
 *   the delays keep growing instead of retrying ~4× a second.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runAgent, runOneRound } from "../../lib/agent/agent.ts";
import { parseAgentConfig } from "../../lib/agent/config.ts";
import { AgentState } from "../../lib/agent/state.ts";
import { sign } from "../../lib/crypto/signing.ts";
import { randomHex } from "../../lib/encoding.ts";
import { loadIdentity } from "../../lib/identity.ts";
import { listen } from "../../lib/net/server.ts";
import { inviteFields } from "../../lib/protocol/transcript.ts";
import { parseQuery } from "../../lib/query.ts";
import { roundTerms } from "../../lib/runtime/terms.ts";
import { encodeIdle, encodeMessage } from "../../lib/wire/messages.ts";
import { makePki, removeDir } from "../helpers.ts";

function credentials(pki: string, name: string) {
  return { ca: join(pki, "ca.crt"), cert: join(pki, `${name}.crt`), key: join(pki, `${name}.key`) };
}

async function agentSetup(pki: string, dir: string) {
  await Deno.writeTextFile(join(dir, "north.csv"), "id,chol\n1,182.0\n2,240.0\n");
  const config = parseAgentConfig(
    `name = "north"
hospital = "127.0.0.1:1"
certs = "${pki}"

[data.chol]
file = "north.csv"
column = "chol"
scale = 1
max = 400
`,
    join(dir, "north.toml"),
  );
  return {
    config,
    identity: await loadIdentity("north", credentials(pki, "north"), { use: "peer" }),
    state: await AgentState.open(join(dir, "north.state.json")),
  };
}

/** A listener holding the hospital's credentials from `pki`, naming each client as `authorize` says. */
async function fakeHospital(pki: string, authorize: () => Promise<string>) {
  const hospital = await loadIdentity("hospital", credentials(pki, "hospital"), {
    use: "hospital",
  });
  const server = await listen({
    hostname: "127.0.0.1",
    port: 0,
    ca: hospital.caPem,
    cert: hospital.certPem,
    key: hospital.keyPem,
    authorize,
  });
  return { hospital, server };
}

Deno.test("agent: an INVITE without deadlines still ends in a timeout, not a hang", async () => {
  const pki = await makePki(["hospital", "north"]);
  const dir = await Deno.makeTempDir();
  const { hospital, server } = await fakeHospital(pki, () => Promise.resolve("north"));
  const stop = new AbortController();
  const { config, identity, state } = await agentSetup(pki, dir);
  const guard = setTimeout(() => stop.abort(new Error("the agent hung")), 20_000);
  try {
    const silent = (async () => {
      const conn = await server.accept(AbortSignal.timeout(15_000));
      try {
        const { deadlines: _, ...terms } = roundTerms({
          query: parseQuery("sum", 1),
          scale: 1,
          max: 4000n,
          maxRows: 4096,
          peers: 2,
          minContributors: 2,
          phaseTimeoutMs: 1000,
        });
        const session = randomHex(16);
        const signature = await sign(hospital.privateKey, "invite", inviteFields(session, terms));
        await conn.write(
          encodeMessage({
            type: "invite",
            session,
            hospitalCert: hospital.certPem,
            terms,
            signature,
          }),
          AbortSignal.timeout(5_000),
        );
        // Silent from here on, the connection open, until the agent gives up.
        for (;;) await conn.readFrame(stop.signal);
      } catch {
        // The agent closed the connection, or the test ended.
      } finally {
        conn.close();
      }
    })();
    const lines: string[] = [];
    const started = performance.now();
    const { entry } = await runOneRound({
      config,
      identity,
      state,
      hospital: { hostname: "127.0.0.1", port: server.port },
      variable: config.variables.get("chol")!,
      joinTimeoutMs: 10_000,
      defaultPhaseMs: 1_000,
      log: (line) => lines.push(line),
      signal: stop.signal,
    });
    const seconds = (performance.now() - started) / 1000;
    assert.equal(entry.outcome, "aborted", lines.join("\n"));
    assert.match(String(entry.reason), /timed out|deadline/i);
    assert.ok(seconds < 15, `ended after ${seconds} s`);
    assert.ok(lines.some((l) => /no word from the hospital in the \w+ phase/.test(l)));
    stop.abort(new Error("done"));
    await silent;
  } finally {
    clearTimeout(guard);
    stop.abort(new Error("done"));
    server.close();
    state.close();
    await removeDir(pki);
    await removeDir(dir);
  }
});

Deno.test("agent: a hospital that refuses the party after the TLS handshake gets a growing backoff", async () => {
  const pki = await makePki(["hospital", "north"]);
  const dir = await Deno.makeTempDir();
  let handshakes = 0;
  // As for a revoked party: the handshake completes, then the hospital refuses it.
  const { server } = await fakeHospital(pki, () => {
    handshakes++;
    return Promise.reject(new Error("the certificate of north is revoked"));
  });
  const stop = new AbortController();
  const { config, identity, state } = await agentSetup(pki, dir);
  try {
    const delays: number[] = [];
    const lines: string[] = [];
    const running = runAgent({
      config,
      identity,
      state,
      hospital: { hostname: "127.0.0.1", port: server.port },
      retryMs: { first: 40, max: 1_000 },
      log: (line) => {
        lines.push(line);
        const delay = line.match(/(?:reconnecting|retrying) in (\d+) ms/);
        if (delay) delays.push(Number(delay[1]));
      },
      signal: stop.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    stop.abort(new Error("done"));
    await running;
    assert.ok(lines.some((l) => /connected to the hospital/.test(l)), lines.join("\n"));
    // 40, 80, 160, 320, 640, 1000 ms (each halved at worst by the jitter): a
    // handful of attempts in 4 s; a backoff reset on every connect would make
    // them ~40 ms apart, some 100 attempts.
    assert.ok(delays.length >= 3, lines.join("\n"));
    assert.ok(Math.max(...delays) >= 300, `delays ${delays.join(", ")}`);
    assert.ok(handshakes <= 12, `${handshakes} handshakes in 4 s`);
  } finally {
    stop.abort(new Error("done"));
    server.close();
    state.close();
    await removeDir(pki);
    await removeDir(dir);
  }
});

Deno.test("agent: a connection the hospital accepts and then closes at once (a twin of the same name) does not reset the backoff", async () => {
  const pki = await makePki(["hospital", "north"]);
  const dir = await Deno.makeTempDir();
  const { server } = await fakeHospital(pki, () => Promise.resolve("north"));
  const stop = new AbortController();
  let accepted = 0;
  const serving = (async () => {
    for (;;) {
      const conn = await server.accept(stop.signal).catch(() => undefined);
      if (conn === undefined) return;
      accepted++;
      // Accepted (the heartbeat goes out at once), then replaced by the twin.
      await conn.write(encodeIdle(), AbortSignal.timeout(2_000)).catch(() => {});
      setTimeout(() => conn.close(), 100);
    }
  })();
  const { config, identity, state } = await agentSetup(pki, dir);
  try {
    const delays: number[] = [];
    const lines: string[] = [];
    const running = runAgent({
      config,
      identity,
      state,
      hospital: { hostname: "127.0.0.1", port: server.port },
      retryMs: { first: 40, max: 1_000 },
      log: (line) => {
        lines.push(line);
        const delay = line.match(/reconnecting in (\d+) ms/);
        if (delay) delays.push(Number(delay[1]));
      },
      signal: stop.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    stop.abort(new Error("done"));
    await running;
    assert.ok(delays.length >= 3, lines.join("\n"));
    assert.ok(Math.max(...delays) >= 300, `delays ${delays.join(", ")}`);
    assert.ok(accepted <= 10, `${accepted} connections in 4 s`);
  } finally {
    stop.abort(new Error("done"));
    server.close();
    await serving;
    state.close();
    await removeDir(pki);
    await removeDir(dir);
  }
});
