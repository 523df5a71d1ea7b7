/**
 * Only the hospital's operator may ask: another user cannot use the 0600
 * control socket. The tests run as root, which file modes do not stop, so
 * the asking side runs as uid/gid 65534 (nobody) through setpriv(1), with
 * the socket's folder opened to everyone so that the socket's own mode is
 * the only guard. The asker is lib/service/control.ts's own askControl, run
 * by a small script that needs no npm packages (nobody has no module cache).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, ROOT, scenario } from "../helpers.ts";
import { ask, startService } from "./helpers.ts";

const NOBODY = 65534;

/** Whether `setpriv` can drop to nobody here; the reason when it cannot. */
async function canDropPrivileges(): Promise<string | undefined> {
  try {
    const me = await new Deno.Command("id", { args: ["-u"], stdout: "piped" }).output();
    if (new TextDecoder().decode(me.stdout).trim() !== "0") {
      return "not running as root (setpriv needs root; file modes already apply)";
    }
    const probe = await new Deno.Command("setpriv", {
      args: [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "id", "-u"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const uid = new TextDecoder().decode(probe.stdout).trim();
    return probe.success && uid === String(NOBODY) ? undefined : "setpriv cannot switch to nobody";
  } catch {
    return "no setpriv on this machine";
  }
}

const skip = await canDropPrivileges();
if (skip !== undefined) console.log(`control socket access test skipped: ${skip}`);

Deno.test({
  name: "ask: a user other than the hospital's operator is refused by the control socket",
  ignore: skip !== undefined,
  fn: async () => {
    const pki = await makePki(["hospital"]);
    const dir = await Deno.makeTempDir({ prefix: "sumshare-access-" });
    // Anyone may reach the folder: only the socket's 0600 stands between nobody and the service.
    await Deno.chmod(dir, 0o755);
    const cache = await Deno.makeTempDir({ prefix: "sumshare-nobody-deno-" });
    await Deno.chown(cache, NOBODY, NOBODY);
    const script = join(dir, "ask.ts");
    await Deno.writeTextFile(
      script,
      `import { askControl } from ${JSON.stringify(join(ROOT, "lib/service/control.ts"))};
try {
  const answer = await askControl(Deno.args[0]!, { ask: "anything" }, 10_000);
  console.log("ANSWERED " + JSON.stringify(answer));
} catch (error) {
  console.log("REFUSED " + (error as Error).message);
}
`,
    );
    await Deno.chmod(script, 0o644);
    await scenario([pki, dir, cache], async (processes: CliProcess[]) => {
      const control = join(dir, "control.sock");
      await startService(processes, pki, control);
      const asNobody = (path: string) =>
        new Deno.Command("setpriv", {
          args: [
            `--reuid=${NOBODY}`,
            `--regid=${NOBODY}`,
            "--clear-groups",
            Deno.execPath(),
            "run",
            "--no-config",
            "--quiet",
            "--allow-read",
            "--allow-write",
            "--allow-net",
            script,
            path,
          ],
          env: { DENO_DIR: cache, HOME: cache, NO_COLOR: "1" },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
          cwd: dir,
        }).output();
      const other = await asNobody(control);
      const said = new TextDecoder().decode(other.stdout).trim();
      assert.match(
        said,
        /^REFUSED Cannot reach the hospital's control socket \S+: permission denied \(only the hospital's operator may ask\)$/,
        `${said}\n${new TextDecoder().decode(other.stderr)}`,
      );
      // The operator (this user) is answered over the same socket.
      const mine = await ask(processes, control, ["sum", "chol"]);
      assert.equal(mine.code, 1);
      assert.match(String((mine.json["error"] as { message: string }).message), /0 connected/);
    });
  },
});
