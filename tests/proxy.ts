/**
 * A small TCP proxy for fault tests: it stands between a peer and the
 * hospital (the peer's `--hospital` is the proxy's address) and can hold
 * connections (stall), let them through, cut them, or silently drop what
 * they carry (a partition), at once or later at a point the test observed.
 * It forwards bytes blindly, so TLS still runs end to end between the real
 * parties.
 *
 * @module
 */

import { deferred } from "../lib/deadline.ts";

/** What the proxy does with a new connection. */
export type ProxyMode = "pass" | "stall" | "cut-first";

/** A proxy on 127.0.0.1 in front of a target that may be set later. */
export class TcpProxy {
  #listener: Deno.Listener;
  #target = deferred<{ hostname: string; port: number }>();
  #mode: ProxyMode;
  #released = deferred<void>();
  #sockets = new Set<Deno.Conn>();
  /** Forwarded links; a stalled one drops what it reads. */
  #links = new Set<{ stalled: boolean }>();
  #accepting: Promise<void>;
  #cut = 0;
  /** How many connections the proxy has cut. */
  get cut(): number {
    return this.#cut;
  }

  constructor(mode: ProxyMode) {
    this.#mode = mode;
    if (mode !== "stall") this.#released.resolve();
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's own address, for a peer's `--hospital`. */
  get address(): string {
    return `127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  /** Sets where connections go (`HOST:PORT`). */
  setTarget(address: string): void {
    const [hostname, port] = [
      address.slice(0, address.lastIndexOf(":")),
      Number(address.slice(address.lastIndexOf(":") + 1)),
    ];
    this.#target.resolve({ hostname, port });
  }

  /** Lets held and later connections through. */
  release(): void {
    this.#released.resolve();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      this.#sockets.add(client);
      if (this.#mode === "cut-first" && this.#cut === 0) {
        this.#cut++;
        this.#close(client);
        continue;
      }
      this.#forward(client).catch(() => {}).finally(() => this.#close(client));
    }
  }

  async #forward(client: Deno.Conn): Promise<void> {
    await this.#released.promise;
    const target = await this.#target.promise;
    const server = await Deno.connect({ hostname: target.hostname, port: target.port });
    this.#sockets.add(server);
    const link = { stalled: false };
    this.#links.add(link);
    try {
      await Promise.race([pipe(client, server, link), pipe(server, client, link)]);
    } finally {
      this.#links.delete(link);
      this.#close(server);
    }
  }

  #close(conn: Deno.Conn): void {
    this.#sockets.delete(conn);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * Stops forwarding on every link open now, in both directions, without
   * closing anything: the network silently drops what either side sends
   * (a partition), so only deadlines can end it. Later links still pass.
   */
  stallAll(): number {
    for (const link of this.#links) link.stalled = true;
    return this.#links.size;
  }

  /**
   * Cuts every connection open now (both sides see the link drop); later ones
   * still pass. Returns how many sockets it closed (two per forwarded link).
   */
  cutAll(): number {
    const open = [...this.#sockets];
    for (const conn of open) this.#close(conn);
    return open.length;
  }

  /** Stops the proxy and closes every connection. */
  async close(): Promise<void> {
    this.#released.resolve();
    this.#target.resolve({ hostname: "127.0.0.1", port: 9 });
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of [...this.#sockets]) this.#close(conn);
    await this.#accepting;
  }
}

async function pipe(from: Deno.Conn, to: Deno.Conn, link: { stalled: boolean }): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await from.read(buffer);
    if (n === null) return;
    // Read and dropped, as a partition would: the sender's writes still succeed.
    if (link.stalled) continue;
    let offset = 0;
    while (offset < n) offset += await to.write(buffer.subarray(offset, n));
  }
}
