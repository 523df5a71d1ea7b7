/**
 * The docs cannot drift from the code: every fenced shell block marked
 * runnable (an info string of "sh runnable") in README.md and docs/*.md is
 * executed, against a throwaway folder and a `sumshare` command on PATH that
 * runs this checkout's main.ts with the compiled binary's permissions.
 *
 * A document's runnable blocks run in order in one bash process (`set -euo
 * pipefail`), so a walkthrough can make certificates in one block, start a
 * serving hospital in the background in the next, and ask in the last. The
 * only rewrite is the documented example port: `127.0.0.1:7000` becomes a
 * free loopback port, so the test runs beside anything else. Background jobs
 * are killed when the script ends, however it ends.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { cliCommand, removeDir, ROOT } from "./helpers.ts";

/** One runnable block: where it is and what it runs. */
export interface RunnableBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
}

const OPEN = /^```(?:sh|bash) runnable\s*$/;

/** The runnable shell blocks of one Markdown text, in order. */
export function runnableBlocks(file: string, text: string): RunnableBlock[] {
  const blocks: RunnableBlock[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!OPEN.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`${file}:${start + 1}: runnable block is not closed`);
    blocks.push({ file, line: start + 1, code: body.join("\n") });
  }
  return blocks;
}

function documents(): string[] {
  const docs = [...Deno.readDirSync(join(ROOT, "docs"))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => join("docs", e.name))
    .sort();
  return ["README.md", ...docs];
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The script for one document's blocks: each block announced, background jobs reaped. */
function script(blocks: RunnableBlock[], port: number): string {
  const parts = [
    "set -euo pipefail",
    // Whatever a block left running in the background ends with the script.
    "trap 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null || true' EXIT",
  ];
  for (const block of blocks) {
    parts.push(`echo ">>> ${block.file}:${block.line}" >&2`);
    parts.push(block.code.replaceAll("127.0.0.1:7000", `127.0.0.1:${port}`));
  }
  return parts.join("\n") + "\n";
}

async function runDocument(file: string, blocks: RunnableBlock[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-docs-" });
  try {
    const bin = join(dir, ".bin");
    await Deno.mkdir(bin);
    const shim = join(bin, "sumshare");
    const command = cliCommand().map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
    await Deno.writeTextFile(shim, `#!/bin/sh\nexec ${command} "$@"\n`, { mode: 0o755 });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 150_000);
    try {
      const output = await new Deno.Command("bash", {
        args: ["-c", script(blocks, freePort())],
        cwd: dir,
        // The rest of the environment is inherited: Deno's cache (DENO_DIR, HOME) stays the same.
        env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: controller.signal,
      }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `${file}: its runnable blocks failed:\n${text}`);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await removeDir(dir);
  }
}

Deno.test("runnableBlocks finds marked shell blocks only, with their lines", () => {
  const text = [
    "# t",
    "```sh",
    "not run",
    "```",
    "```sh runnable",
    "echo one",
    "echo two",
    "```",
    "```text",
    "```sh runnable",
    "```",
  ].join("\n");
  assert.deepEqual(runnableBlocks("x.md", text), [
    { file: "x.md", line: 5, code: "echo one\necho two" },
    { file: "x.md", line: 10, code: "" },
  ]);
  assert.throws(() => runnableBlocks("y.md", "```sh runnable\necho"), /y\.md:1: .*not closed/);
});

Deno.test("a failing block fails its document, and background jobs end with the script", async () => {
  await assert.rejects(
    runDocument("fake.md", [{ file: "fake.md", line: 1, code: "sleep 600 &\nexit 3" }]),
    /fake\.md: its runnable blocks failed:\n>>> fake\.md:1/,
  );
  await runDocument("fake.md", [{
    file: "fake.md",
    line: 1,
    code: "sleep 600 &\nsumshare --help >/dev/null",
  }]);
});

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as hyphens. */
export function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replaceAll(" ", "-");
}

function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (/^```/.test(line)) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (heading) anchors.add(anchorOf(heading[1]!));
  }
  return anchors;
}

Deno.test("anchorOf follows GitHub's rule", () => {
  assert.equal(anchorOf("Receipts and `verify`"), "receipts-and-verify");
  assert.equal(
    anchorOf("12. Timers and what they count from"),
    "12-timers-and-what-they-count-from",
  );
  assert.equal(
    anchorOf("What happens when something goes wrong"),
    "what-happens-when-something-goes-wrong",
  );
});

Deno.test("every relative link in README.md and docs/ points at a file and heading that exist", () => {
  const broken: string[] = [];
  for (const file of documents()) {
    const text = Deno.readTextFileSync(join(ROOT, file));
    const prose = text.replace(/^```[\s\S]*?^```/gm, "");
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // https:, mailto:
      const [path, anchor] = target!.split("#") as [string, string | undefined];
      const resolved = path === "" ? file : join(dirname(file), path);
      let body: string;
      try {
        body = Deno.readTextFileSync(join(ROOT, resolved));
      } catch {
        broken.push(`${file}: ${target} (no file ${resolved})`);
        continue;
      }
      if (anchor && resolved.endsWith(".md") && !anchorsOf(body).has(anchor)) {
        broken.push(`${file}: ${target} (no heading #${anchor} in ${resolved})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("the README has runnable blocks", () => {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  assert.ok(runnableBlocks("README.md", readme).length > 0, "README.md marks no block runnable");
});

for (const file of documents()) {
  const blocks = runnableBlocks(file, Deno.readTextFileSync(join(ROOT, file)));
  if (blocks.length === 0) continue;
  Deno.test({
    name: `the runnable blocks of ${file} run (${blocks.length} blocks)`,
    sanitizeResources: false,
    fn: () => runDocument(file, blocks),
  });
}
