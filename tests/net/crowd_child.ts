/**
 * A crowd for crowd_test.ts, in its own process so that the hospital's
 * memory can be measured alone: `IDLE` plain TCP connections that never
 * start TLS, and `HALF` mutual-TLS connections (as the party in CERT/KEY)
 * that each send a header announcing 16 KiB and only half of it. Prints
 * "ready" once all are open and written, then holds them until stdin closes.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-read crowd_child.ts PORT IDLE HALF CA CERT KEY
 *
 * @module
 */

const [port, idle, half, caPath, certPath, keyPath] = Deno.args;
const hostname = "127.0.0.1";
const held: Deno.Conn[] = [];
const ca = await Deno.readTextFile(caPath!);
const cert = await Deno.readTextFile(certPath!);
const key = await Deno.readTextFile(keyPath!);

for (let i = 0; i < Number(idle); i += 50) {
  const batch = Math.min(50, Number(idle) - i);
  held.push(
    ...await Promise.all(
      Array.from({ length: batch }, () => Deno.connect({ hostname, port: Number(port) })),
    ),
  );
}

const frame = new Uint8Array(4 + 8192);
new DataView(frame.buffer).setUint32(0, 16 * 1024);
for (let i = 0; i < Number(half); i += 20) {
  const batch = Math.min(20, Number(half) - i);
  held.push(
    ...await Promise.all(Array.from({ length: batch }, async () => {
      const conn = await Deno.connectTls({
        hostname,
        port: Number(port),
        caCerts: [ca],
        cert,
        key,
      });
      await conn.handshake();
      await conn.write(frame);
      return conn;
    })),
  );
}

console.log("ready");
// Hold everything until the parent closes stdin (or kills this process).
for await (const _ of Deno.stdin.readable) { /* wait */ }
for (const conn of held) {
  try {
    conn.close();
  } catch {
    // closed by the server
  }
}
