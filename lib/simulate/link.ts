/**
 * A TCP forwarder on loopback between one simulated peer and the hospital,
 * which the simulator can cut: how a peer "vanishes" mid-round.
 *
 * `runStarPeer` owns its connection, and aborting its signal stops it from
 * writing but leaves the socket open until the peer's own deadline, so the
 * hospital would wait out a whole phase before noticing. A peer that is to
 * drop out therefore connects through one of these (TLS passes through
 * untouched: the hospital's certificate still names 127.0.0.1), and
 * {@linkcode CuttableLink.cut} closes both sockets at once, as a lost
 * network would: the hospital sees the connection end at that moment.
 *
 * @module
 */

import type { HostPort } from "../names.ts";

/** Bytes asked of a socket per read. */
const READ_BYTES = 64 * 1024;

/** A forwarder for exactly one connection, from a fresh loopback port to `target`. */
export class CuttableLink {
  #listener: Deno.TcpListener;
  #target: HostPort;
  #sockets: Deno.TcpConn[] = [];
  #cut = false;
  #done: Promise<void>;

  constructor(target: HostPort) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#done = this.#serve().catch(() => this.cut());
  }

  /** Where the peer connects instead of the hospital. */
  get address(): HostPort {
    return { hostname: "127.0.0.1", port: (this.#listener.addr as Deno.NetAddr).port };
  }

  /** Whether {@linkcode cut} was called. */
  get isCut(): boolean {
    return this.#cut;
  }

  async #serve(): Promise<void> {
    const inner = await this.#listener.accept();
    this.#listener.close();
    this.#sockets.push(inner);
    if (this.#cut) return this.cut();
    const outer = await Deno.connect({
      hostname: this.#target.hostname,
      port: this.#target.port,
    });
    this.#sockets.push(outer);
    if (this.#cut) return this.cut();
    outer.setNoDelay(true);
    inner.setNoDelay(true);
    // Either direction ending ends the link: no half-open connections.
    await Promise.race([pump(inner, outer), pump(outer, inner)]);
    this.cut();
  }

  /** Closes the listener and both sockets now. Idempotent. */
  cut(): void {
    this.#cut = true;
    for (const closable of [this.#listener, ...this.#sockets]) {
      try {
        closable.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Cuts the link and waits for its forwarding to stop. */
  async close(): Promise<void> {
    this.cut();
    await this.#done;
  }
}

async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(READ_BYTES);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) return;
      let offset = 0;
      while (offset < n) offset += await to.write(buffer.subarray(offset, n));
    }
  } catch {
    // A cut socket: the link is over.
  }
}
