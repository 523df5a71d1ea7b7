/**
 * A flood for crowd_test.ts, in its own process so that it can run with
 * `--v8-flags=--expose-gc` and measure its own heap: listens with
 * lib/net/server.ts (maxHandshakes 50), opens COUNT idle TCP connections to
 * itself in batches (so all but 50 are evicted), closes them, collects
 * garbage, and prints one JSON line: the heap before and after, and how many
 * connections the server refused.
 *
 * Usage: deno run --v8-flags=--expose-gc --allow-net=127.0.0.1 flood_child.ts COUNT
 *
 * @module
 */

import { listen } from "../../lib/net/server.ts";
import { closeQuietly, openIdle, party, testAuthorize, testPki } from "./helpers.ts";

const count = Number(Deno.args[0]);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Deno.memoryUsage().heapUsed;
}

const pki = await testPki();
let refused = 0;
const server = await listen({
  hostname: "127.0.0.1",
  port: 0,
  ca: pki.home.ca.cert,
  ...party(pki.home, "hospital"),
  authorize: testAuthorize(pki.home.ca.cert),
  maxHandshakes: 50,
  // Long, so that no connection is cut by time: all but 50 are evicted.
  handshakeTimeoutMs: 60_000,
  // Counted, not kept: keeping thousands of errors would be this test's own growth.
  onRefused: () => refused++,
});
try {
  // Warm up: the first connections load code and fill caches once.
  for (const conn of await openIdle(server.port, 100)) closeQuietly(conn);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = await settledHeap();
  for (let i = 0; i < count; i += 500) {
    const batch = await openIdle(server.port, Math.min(500, count - i));
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const conn of batch) closeQuietly(conn);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await settledHeap();
  console.log(JSON.stringify({ before, after, refused: refused }));
} finally {
  server.close();
}
