/**
 * Log lines carry the time: every line a one-shot hospital or peer writes
 * to stderr starts with an ISO 8601 UTC stamp, piped or not, as the
 * serving hospital's and the agents' do; `unstamped` takes it off for
 * readers that match lines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { stamped, unstamped } from "../lib/log.ts";
import { cliCommand, hospitalArgs, makePki, removeDir } from "./helpers.ts";

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

Deno.test("stamped puts the time in front, unstamped takes exactly that off", () => {
  const line = stamped("listening on 127.0.0.1:7000");
  assert.match(line, STAMP);
  assert.equal(unstamped(line), "listening on 127.0.0.1:7000");
  assert.equal(unstamped("listening on 127.0.0.1:7000"), "listening on 127.0.0.1:7000");
  assert.equal(unstamped("2026 not a stamp"), "2026 not a stamp");
});

Deno.test("a one-shot hospital's piped log lines each start with the time", async () => {
  const pki = await makePki(["hospital", "alice", "bob"]);
  try {
    const [deno, ...args] = cliCommand();
    const out = await new Deno.Command(deno!, {
      args: [...args, ...hospitalArgs(pki, { peers: 2, json: false }, ["--join-timeout", "1"])],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l !== "");
    assert.equal(out.code, 1, "no peer came: the round fails at the join deadline");
    assert.ok(lines.some((l) => /listening on /.test(l)), lines.join("\n"));
    const logged = lines.filter((l) => !l.startsWith("sumshare hospital:"));
    assert.ok(logged.length >= 1);
    for (const line of logged) assert.match(line, STAMP);
  } finally {
    await removeDir(pki);
  }
});
