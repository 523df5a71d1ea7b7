/**
 * The hospital side of crowd_test.ts's memory bound, in its own process:
 * `deno test --parallel` runs test files side by side in one process, so
 * that process's resident memory also grows with whatever the other files
 * allocate meanwhile (once 88 MiB against a bound of 64 under load). Here
 * it is this listener's alone.
 *
 * Listens with lib/net/server.ts's default limits, but a 30 s handshake
 * timeout (so that nothing is cut by time while it measures),
 * writes the CA and bob's certificate and key into DIR for the crowd, does
 * one honest exchange (so that code is loaded and caches are filled before
 * the baseline), prints {"port"} as one JSON line, and waits for a line on
 * stdin saying the crowd is ready. Then it accepts HELD connections, takes
 * its resident memory again, does another honest exchange, and prints one
 * JSON line: the growth in MiB, the handshakes and waiting connections the
 * server holds, and the largest and total frame bytes buffered. It holds
 * everything until stdin closes.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-read --allow-write=DIR crowd_server_child.ts DIR HELD
 *
 * @module
 */

import { join } from "node:path";
import type { Connection } from "../../lib/net/connection.ts";
import { deadline, honestExchange, party, startServer, testPki } from "./helpers.ts";

const [dir, heldArg] = Deno.args;
const wanted = Number(heldArg);
const pki = await testPki();
const server = await startServer(pki, { handshakeTimeoutMs: 30_000 });
const held: Connection[] = [];
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
try {
  using time = deadline(30_000);
  const { signal } = time;
  const bob = party(pki.home, "bob");
  await Deno.writeTextFile(join(dir!, "ca.crt"), pki.home.ca.cert);
  await Deno.writeTextFile(join(dir!, "bob.crt"), bob.cert);
  await Deno.writeTextFile(join(dir!, "bob.key"), bob.key);
  await honestExchange(pki, server, "alice", signal);
  const rssBefore = Deno.memoryUsage().rss;
  console.log(JSON.stringify({ port: server.server.port }));
  const { done } = await lines.read();
  if (done) throw new Error("stdin closed before the crowd was ready");
  while (held.length < wanted) held.push(await server.server.accept(signal));
  const handshaking = server.server.handshaking;
  const waiting = server.server.waiting;
  const grownMiB = (Deno.memoryUsage().rss - rssBefore) / 2 ** 20;
  const buffered = held.map((c) => c.buffered);
  // And an honest client still gets through, past the connections held above.
  await honestExchange(pki, server, "alice", signal);
  console.log(JSON.stringify({
    grownMiB,
    handshaking,
    waiting,
    maxBuffered: Math.max(...buffered),
    totalBuffered: buffered.reduce((a, b) => a + b, 0),
  }));
  // Hold everything until the parent closes stdin.
  while (!(await lines.read()).done) { /* wait */ }
} finally {
  for (const c of held) c.close();
  server.server.close();
}
