/**
 * `sumshare run`: a whole round on one machine. It makes a throwaway PKI,
 * starts the hospital and every peer as separate OS processes talking TLS on
 * loopback, prints a timeline of what they report, and checks the hospital's
 * sum against the plaintext total, which only a demo operator can know.
 *
 * @module
 */

import { unstamped } from "./log.ts";
import { cleanUpOnInterrupt } from "./interrupt.ts";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatScaled, parseScaled } from "./decimal.ts";
import { createConsortium, writeConsortium } from "./pki.ts";

/** Where the demo writes. */
export interface DemoConsole {
  out(line: string): void;
  err(line: string): void;
}

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** The inputs, scaled (× 10^scale); when absent, `peers` random inputs in [0, 1000). */
  values?: bigint[] | undefined;
  peers: number;
  /** Decimal places of the inputs, passed to every party as `--scale` (default 0). */
  scale?: number;
  timeoutMs: number;
  io: DemoConsole;
}

const PEER_NAMES = [
  "alice",
  "bob",
  "charlie",
  "dave",
  "erin",
  "frank",
  "grace",
  "heidi",
  "ivan",
  "judy",
];

/** alice, bob, charlie, … then peer-11, peer-12, … */
export function demoPeerNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => PEER_NAMES[i] ?? `peer-${i + 1}`);
}

/** A uniform random integer in [0, bound), by rejection sampling. */
function randomBelow(bound: bigint): bigint {
  const bits = bound.toString(2).length;
  const bytes = new Uint8Array(Math.ceil(bits / 8));
  for (;;) {
    crypto.getRandomValues(bytes);
    let value = 0n;
    for (const byte of bytes) value = (value << 8n) | BigInt(byte);
    // Keep only as many bits as the bound has, so at least half the draws land below it.
    value &= (1n << BigInt(bits)) - 1n;
    if (value < bound) return value;
  }
}

/**
 * The command that starts another sumshare process: the compiled executable
 * itself, or Deno running this same script with the permissions a party needs
 * (network on loopback, reading the demo's credentials).
 */
export function selfCommand(certsDir: string): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--config",
    join(dirname(main), "deno.json"),
    "--allow-net=127.0.0.1",
    `--allow-read=${certsDir}`,
    "--v8-flags=--expose-gc", // see garbage.ts: frees Web Crypto's buffers promptly
    main,
  ];
}

/** Yields a byte stream's text lines. */
export async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    yield* lines;
  }
  if (pending !== "") yield pending;
}

interface Party {
  name: string;
  child: Deno.ChildProcess;
  stdout: Promise<string>;
  stderr: Promise<void>;
}

/** Runs the demo; true only when every process succeeded and the sum is right. */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const { io, timeoutMs, scale = 0 } = options;
  const values = options.values ??
    Array.from({ length: options.peers }, () => randomBelow(1000n * 10n ** BigInt(scale)));
  const names = demoPeerNames(values.length);
  const began = performance.now();
  const say = (who: string, line: string) =>
    io.out(
      `${((performance.now() - began) / 1000).toFixed(3).padStart(8)}s  ${who.padEnd(9)} ${line}`,
    );

  const dir = await Deno.makeTempDir({ prefix: "sumshare-demo-" });
  const parties: Party[] = [];
  // One clean-up, for the end of the demo and for Ctrl-C (lib/interrupt.ts).
  const cleanUp = async () => {
    for (const p of parties) tryKill(p.child);
    await Promise.allSettled(parties.map((p) => p.child.status));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const release = cleanUpOnInterrupt(cleanUp);
  try {
    await writeConsortium(dir, await createConsortium(["hospital", ...names]));
    say("demo", `made a throwaway PKI for hospital, ${names.join(", ")} in ${dir}`);
    const command = selfCommand(dir);
    const seconds = String(timeoutMs / 1000);

    const hospitalAddress = Promise.withResolvers<string>();
    const spawn = (name: string, args: string[], onLine?: (line: string) => void): Party => {
      const child = new Deno.Command(command[0]!, {
        args: [...command.slice(1), ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stdout = new Response(child.stdout).text();
      const stderr = (async () => {
        // The demo's timeline has its own clock: each party's own time stamp is taken off.
        for await (const stampedLine of textLines(child.stderr)) {
          const line = unstamped(stampedLine);
          say(name, line);
          onLine?.(line);
        }
      })();
      const party = { name, child, stdout, stderr };
      parties.push(party);
      return party;
    };

    const hospital = spawn(
      "hospital",
      [
        "hospital",
        "--listen",
        "127.0.0.1:0",
        "--peers",
        String(names.length),
        "--certs",
        dir,
        "--json",
        "--scale",
        String(scale),
        "--timeout",
        seconds,
      ],
      (line) => {
        const match = /^listening on (\S+)$/.exec(line);
        if (match) hospitalAddress.resolve(match[1]!);
      },
    );
    hospital.child.status.then(() =>
      hospitalAddress.reject(new Error("the hospital exited before listening"))
    );
    const address = await Promise.race([
      hospitalAddress.promise,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("the hospital did not start listening")), timeoutMs)
      ),
    ]);
    say("demo", `starting ${names.length} peers, each with a private value`);
    names.forEach((name, i) =>
      spawn(name, [
        "peer",
        "--name",
        name,
        "--value",
        formatScaled(values[i]!, scale),
        "--scale",
        String(scale),
        "--hospital",
        address,
        "--certs",
        dir,
        "--timeout",
        seconds,
      ])
    );

    // Each party enforces its own timeouts; this outer bound only guards the demo itself.
    const watchdog = setTimeout(() => {
      say("demo", "a process ran past its timeouts; stopping everything");
      for (const p of parties) tryKill(p.child);
    }, timeoutMs * 3 + 5000);
    const statuses = await Promise.all(parties.map((p) => p.child.status));
    clearTimeout(watchdog);
    await Promise.all(parties.map((p) => p.stderr));

    const failed = parties.filter((_, i) => !statuses[i]!.success).map((p) => p.name);
    const expected = values.reduce((a, b) => a + b, 0n);
    let secure: bigint | undefined;
    try {
      // A JSON number when it is exact, else a decimal string: parsed exactly either way.
      const result = JSON.parse(await hospital.stdout) as { sum: number | string };
      secure = parseScaled(String(result.sum), scale);
    } catch {
      secure = undefined;
    }
    io.out("");
    if (failed.length > 0 || secure === undefined) {
      io.out(
        `round failed: ${
          failed.length ? failed.join(", ") + " exited with an error" : "no sum from the hospital"
        }`,
      );
      return false;
    }
    io.out(`secure sum (from the hospital): ${formatScaled(secure, scale)}`);
    io.out(`plaintext total (demo only):    ${formatScaled(expected, scale)}`);
    io.out(secure === expected ? "match: yes" : "match: NO — the secure sum is wrong");
    return secure === expected;
  } catch (error) {
    io.err(`sumshare run: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  } finally {
    await cleanUp();
    release();
  }
}

function tryKill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
}
