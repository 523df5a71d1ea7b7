/**
 * `run` and `simulate` write a throwaway PKI (every party's private key and
 * the CA's) into a temporary folder. Deno's default action on Ctrl-C or
 * SIGTERM ends the process before any `finally`, so the folder stayed
 * behind (review 17); lib/interrupt.ts now removes it first. Each test runs
 * the CLI with TMPDIR pointing at a folder of its own, waits for the line
 * that names the PKI's folder, sends the signal and checks the folder is gone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { textLines } from "../lib/demo.ts";
import { cliCommand, removeDir } from "./helpers.ts";

async function interrupt(args: string[], signal: Deno.Signal, announce: RegExp) {
  const tmp = await Deno.makeTempDir({ prefix: "sumshare-interrupt-test-" });
  const [command, ...rest] = cliCommand();
  const child = new Deno.Command(command!, {
    args: [...rest, ...args],
    env: { TMPDIR: tmp },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const seen: string[] = [];
  const found = Promise.withResolvers<string>();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const line of textLines(stream)) {
      seen.push(line);
      const match = announce.exec(line);
      if (match) found.resolve(match[1]!);
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  const timer = setTimeout(() => found.reject(new Error("no PKI folder announced")), 60_000);
  try {
    const dir = await found.promise;
    const output = () => seen.join("\n");
    assert.ok(dir.startsWith(tmp), output());
    assert.ok((await Deno.stat(join(dir, "ca.key"))).isFile, "the CA key is there to remove");
    child.kill(signal);
    const status = await child.status;
    await reading;
    assert.equal(status.code, signal === "SIGINT" ? 130 : 143, output());
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, `${dir} was left: ${output()}`);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "nothing else was left either");
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await removeDir(tmp);
  }
}

Deno.test("run: Ctrl-C removes the throwaway PKI before exiting 130", async () => {
  await interrupt(["run", "--peers", "3"], "SIGINT", /made a throwaway PKI .* in (\S+)$/);
});

Deno.test("simulate: SIGTERM removes the throwaway PKI before exiting 143", async () => {
  await interrupt(
    ["simulate", "--peers", "8", "--workers", "1"],
    "SIGTERM",
    /made a throwaway PKI .* in (\S+) \(removed at the end\)$/,
  );
});

Deno.test("interrupt: every registered clean-up finishes before the process exits", async () => {
  // Review 18: the benchmark runs simulate in-process, so two clean-ups are
  // registered; with a listener each, the first to finish exited while the
  // other was still removing its keys. The slow one here writes its marker
  // only after the fast one is long done.
  const tmp = await Deno.makeTempDir({ prefix: "sumshare-interrupt-test-" });
  try {
    const script = join(tmp, "script.ts");
    const module = new URL("../lib/interrupt.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { cleanUpOnInterrupt } from ${JSON.stringify(module)};
const mark = (name: string) => Deno.writeTextFile(${JSON.stringify(tmp)} + "/" + name, "");
cleanUpOnInterrupt(() => mark("fast"));
cleanUpOnInterrupt(async () => {
  await new Promise((resolve) => setTimeout(resolve, 300));
  await mark("slow");
});
const released = cleanUpOnInterrupt(() => mark("released"));
released();
console.log("ready");
await new Promise(() => setTimeout(() => {}, 60_000));
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `--allow-write=${tmp}`, script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = textLines(child.stdout);
    assert.equal((await lines.next()).value, "ready");
    child.kill("SIGINT");
    const { code } = await child.status;
    await child.stderr.cancel();
    assert.equal(code, 130);
    const left = [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
    assert.deepEqual(left, ["fast", "script.ts", "slow"], "both ran; the released one did not");
  } finally {
    await removeDir(tmp);
  }
});
