/**
 * The serving hospital's control socket: a Unix socket, readable and
 * writable by its owner only (0600), through which `sumshare ask` sends one
 * question as one JSON line and reads one JSON line back. The socket is
 * created inside a fresh 0700 folder, set to 0600 there and only then
 * renamed into place, so there is no moment at which another user could
 * connect to it. Only the operator who may write the socket can ask.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { abortable, deadlineSignal } from "../deadline.ts";
import { FileError, TimeoutError } from "../errors.ts";

/** The longest request or answer line, in bytes. */
const MAX_LINE_BYTES = 1 << 26;

/** A running control socket. */
export interface ControlServer {
  path: string;
  close(): void;
}

/**
 * Listens on `path` and answers each connection's one request line with
 * `handle`'s answer. Refuses to take over a socket another service answers on.
 */
export async function serveControl(
  path: string,
  handle: (request: unknown) => Promise<unknown>,
  log: (line: string) => void,
): Promise<ControlServer> {
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
    throw new FileError(`Cannot serve on ${path}: another service is answering there`);
  } catch (error) {
    if (error instanceof FileError) throw error;
    // Not a live socket: a stale one from a crash is replaced; anything else is kept.
    try {
      const info = await Deno.lstat(path);
      if (!info.isSocket) {
        throw new FileError(`Cannot serve on ${path}: it exists and is not a socket`);
      }
      await Deno.remove(path);
    } catch (cause) {
      if (cause instanceof FileError) throw cause;
      if (!(cause instanceof Deno.errors.NotFound)) {
        throw new FileError(`Cannot serve on ${path}: ${(cause as Error).message}`, { cause });
      }
    }
  }
  let listener: Deno.UnixListener;
  const folder = await Deno.makeTempDir({ dir: dirname(path), prefix: ".sumshare-control-" });
  try {
    await Deno.chmod(folder, 0o700);
    const inside = join(folder, "control.sock");
    listener = Deno.listen({ transport: "unix", path: inside });
    try {
      await Deno.chmod(inside, 0o600);
      await Deno.rename(inside, path);
    } catch (cause) {
      listener.close();
      throw cause;
    }
  } catch (cause) {
    throw new FileError(`Cannot serve on ${path}: ${(cause as Error).message}`, { cause });
  } finally {
    await Deno.remove(folder, { recursive: true }).catch(() => {});
  }
  const serving = (async () => {
    for await (const conn of listener) {
      void answer(conn, handle, log);
    }
  })().catch(() => {});
  return {
    path,
    close() {
      listener.close();
      void serving;
      try {
        Deno.removeSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}

async function answer(
  conn: Deno.UnixConn,
  handle: (request: unknown) => Promise<unknown>,
  log: (line: string) => void,
): Promise<void> {
  try {
    const line = await readLine(conn, deadlineSignal(10_000, "reading the request"));
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch {
      request = undefined;
    }
    const reply = await handle(request);
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(reply) + "\n"));
  } catch (error) {
    log(`control: ${(error as Error).message}`);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** Reads up to the first newline, within `signal`. */
async function readLine(conn: Deno.Conn, signal: AbortSignal): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await abortable(conn.read(buffer), signal);
    if (n === null) throw new Error("the other side closed before a whole line");
    const chunk = buffer.slice(0, n);
    const end = chunk.indexOf(0x0a);
    chunks.push(end < 0 ? chunk : chunk.subarray(0, end));
    size += n;
    if (end >= 0) break;
    if (size > MAX_LINE_BYTES) throw new Error("the line is too long");
  }
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/** Options for {@linkcode askControl}. */
export interface AskControlOptions {
  /**
   * How long to keep trying while no hospital serves at `path` yet (it is
   * starting): `ask --peers N` waits for the hospital as it waits for the
   * agents. Default 0: one try.
   */
  connectWithinMs?: number;
  /** Called once, when the first try finds no hospital and the wait begins. */
  onWait?: () => void;
}

/** Connects to the control socket, retrying while no hospital serves there, up to `withinMs`. */
async function connectControl(
  path: string,
  withinMs: number,
  onWait: () => void,
): Promise<Deno.UnixConn> {
  const until = performance.now() + withinMs;
  for (let pause = 50, first = true;; pause = Math.min(2 * pause, 500), first = false) {
    try {
      return await Deno.connect({ transport: "unix", path });
    } catch (cause) {
      const notYet = cause instanceof Deno.errors.NotFound ||
        cause instanceof Deno.errors.ConnectionRefused;
      if (!notYet || performance.now() + pause > until) throw cause;
      if (first) onWait();
      await new Promise((done) => setTimeout(done, pause));
    }
  }
}

/** Sends `request` to the control socket at `path` and returns the answer, within `ms`. */
export async function askControl(
  path: string,
  request: unknown,
  ms: number,
  { connectWithinMs = 0, onWait = () => {} }: AskControlOptions = {},
): Promise<unknown> {
  let conn: Deno.UnixConn;
  try {
    conn = await connectControl(path, connectWithinMs, onWait);
  } catch (cause) {
    const why = cause instanceof Deno.errors.PermissionDenied
      ? "permission denied (only the hospital's operator may ask)"
      : cause instanceof Deno.errors.NotFound || cause instanceof Deno.errors.ConnectionRefused
      ? "no serving hospital there (start one with 'sumshare hospital --serve')"
      : (cause as Error).message;
    throw new FileError(`Cannot reach the hospital's control socket ${path}: ${why}`, { cause });
  }
  try {
    // One deadline for sending the question and reading the answer: a hospital that accepts but
    // never reads cannot hold the asker either.
    const signal = deadlineSignal(ms, "waiting for the hospital's answer");
    try {
      await abortable(
        writeAll(conn, new TextEncoder().encode(JSON.stringify(request) + "\n")),
        signal,
      );
      return JSON.parse(await readLine(conn, signal));
    } catch (cause) {
      if (signal.aborted) throw new TimeoutError((cause as Error).message, { cause });
      throw new FileError(`The hospital's answer could not be read: ${(cause as Error).message}`, {
        cause,
      });
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
