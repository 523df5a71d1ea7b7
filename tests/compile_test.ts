/**
 * The single executable: `deno task compile`, then a round run by the binary
 * alone. `deno compile` needs Deno's runtime (denort), which it downloads on
 * first use; where it cannot (no network, nothing cached, no DENORT_BIN) this
 * test is skipped and says so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, removeDir, ROOT } from "./helpers.ts";
import { runDemo, runRound } from "./scenarios.ts";

/** Deno's cache folder, as Deno itself chooses it. */
function denoDir(): string | undefined {
  const explicit = Deno.env.get("DENO_DIR");
  if (explicit) return explicit;
  const home = Deno.env.get("HOME");
  if (Deno.build.os === "darwin") return home && join(home, "Library", "Caches", "deno");
  const xdg = Deno.env.get("XDG_CACHE_HOME") ?? (home && join(home, ".cache"));
  return xdg && join(xdg, "deno");
}

/** Where a runtime for `deno compile` is, or why there is none. */
function findRuntime(): { available: true; source: string } | { available: false; why: string } {
  const explicit = Deno.env.get("DENORT_BIN");
  if (explicit) return { available: true, source: `DENORT_BIN=${explicit}` };
  const dir = denoDir();
  const cached = dir &&
    join(dir, "dl", "release", `v${Deno.version.deno}`, `denort-${Deno.build.target}.zip`);
  try {
    if (cached && Deno.statSync(cached).isFile) return { available: true, source: cached };
  } catch {
    // Not cached.
  }
  return {
    available: false,
    why: `no runtime for deno compile: DENORT_BIN is not set and ${cached ?? "Deno's cache"} ` +
      "does not exist (the first compile downloads it from Deno's servers)",
  };
}

const runtime = findRuntime();
if (!runtime.available) console.log(`SKIPPED compile test: ${runtime.why}`);

Deno.test({
  name: "deno task compile builds one executable that runs a whole round by itself",
  ignore: !runtime.available,
  async fn() {
    const build = await new Deno.Command(Deno.execPath(), {
      args: ["task", "compile"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
    const binary = join(ROOT, Deno.build.os === "windows" ? "sumshare.exe" : "sumshare");
    const self = [binary];
    const dir = await makePki(["hospital", "alice", "bob", "charlie"]);
    try {
      const certs = new CliProcess("certs", [
        "certs",
        "--out",
        join(dir, "fresh"),
        "--names",
        "hospital,alice",
      ], self);
      assert.equal((await certs.finish()).code, 0);
      const summary = await runRound(
        dir,
        [],
        [["alice", ["--value", "5"]], ["bob", ["--value", "6"]], ["charlie", ["--value", "7"]]],
        { command: self },
      );
      assert.equal(summary["sum"], 18);
      // The demo from the binary spawns the binary itself.
      assert.match(await runDemo(["--values", "1,2,3"], { command: self }), /match: yes/);
    } finally {
      await removeDir(dir);
    }
  },
});
