/**
 * Readable output, for `ask` and the one-shot `hospital` alike: every value
 * of a long vector reaches the user (a preview on a terminal and the whole
 * vector in the --result file or a named file; piped output carries every
 * value), a histogram carries its bin edges and is drawn as bars on a
 * terminal, a variance names its population and sample forms, the set is
 * named ("over K of N peers: …"), `max` in JSON is unscaled, and `--json`
 * failures are an `error` object. The commands run in this process (so a
 * terminal can be pretended) against real agents and a real service.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../lib/cli.ts";
import { barChart, presentReport, resultCsv } from "../../lib/service/present.ts";
import { binEdges, type Report } from "../../lib/service/report.ts";
import { cliCommand, CliProcess, makePki, scenario, spawnPeer } from "../helpers.ts";
import {
  ask,
  plain,
  ratio,
  resultOf,
  type Site,
  startAgent,
  startService,
  writeSite,
} from "./helpers.ts";

/**
 * Runs `sumshare ask` without --json and returns its exit code and output
 * lines: piped, or on a pseudo-terminal made by script(1) (stdout and stderr
 * then arrive together).
 */
async function askText(
  processes: CliProcess[],
  control: string,
  args: string[],
  { terminal = false, cwd }: { terminal?: boolean; cwd?: string } = {},
): Promise<{ code: number; lines: string[] }> {
  const words = [...cliCommand(), "ask", "--control", control, ...args];
  let process: CliProcess;
  if (terminal) {
    const quote = (w: string) => `'${w.replaceAll("'", `'\\''`)}'`;
    const line = `${cwd ? `cd ${quote(cwd)} && ` : ""}${words.map(quote).join(" ")}`;
    process = new CliProcess("ask", [], ["script", "-qefc", line, "/dev/null"]);
  } else {
    process = new CliProcess("ask", words.slice(1), [words[0]!]);
  }
  processes.push(process);
  const end = await process.finish(60_000);
  const text = terminal ? end.stdout.replaceAll("\r", "") : end.stdout;
  return { code: end.code, lines: text.split("\n").filter((l) => l !== "") };
}

const NAMES = ["hospital", "north", "south", "east"];

/** A console that records what an in-process command prints; `terminal` pretends stdout is one. */
function recorder(terminal: boolean, stamp = false) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), terminal, stamp },
  };
}

function scaled(cell: string): bigint {
  return BigInt(cell.replace(".", ""));
}

/** Population and sample variance of scaled-by-10 values: the binary64s nearest the exact ones. */
function variances(values: bigint[]) {
  const n = BigInt(values.length);
  const sum = values.reduce((a, b) => a + b, 0n);
  const squares = values.reduce((a, b) => a + b * b, 0n);
  const numerator = n * squares - sum * sum;
  return {
    population: ratio(numerator, n * n * 100n),
    sample: ratio(numerator, n * (n - 1n) * 100n),
  };
}

Deno.test("ask: a long vector previewed on a terminal with every value in a file, all of it when piped; histogram bars with edges; labelled variances; the set; unscaled max", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-output-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["180.5", "220.0", "95.5"] },
      { name: "south", column: "c", cells: ["199.9", "301.0"] },
      { name: "east", column: "mg", cells: ["150.0", "390.0", "400.0"] },
    ];
    const vectors = new Map<string, number[]>();
    sites.forEach((site, s) => {
      const v = Array.from({ length: 25 }, (_, i) => (i * 7 + s * 13) % 50);
      vectors.set(site.name, v);
      site.more = `[data.v]\nfile = "${site.name}-v.json"\nmax = 1000\ndimension = 25\n` +
        `allow = ["vector"]\n`;
    });
    for (const site of sites) {
      await Deno.writeTextFile(
        join(dir, `${site.name}-v.json`),
        JSON.stringify(vectors.get(site.name)),
      );
      startAgent(processes, site.name, await writeSite(dir, pki, site, port));
    }
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    const total = Array.from(
      { length: 25 },
      (_, i) => [...vectors.values()].reduce((a, v) => a + v[i]!, 0),
    );

    // On a terminal: a preview, and the file that holds every value.
    const csv = join(dir, "v.csv");
    const tty = await askText(processes, control, ["--result", csv, "vector", "v"], {
      terminal: true,
    });
    assert.equal(tty.code, 0, tty.lines.join("\n"));
    const preview = tty.lines.indexOf(
      `vector (25 values): [${total.slice(0, 10).join(", ")}, …]`,
    );
    assert.ok(preview >= 0, tty.lines.join("\n"));
    assert.equal(tty.lines[preview + 1], `all 25 values: ${csv}`);
    assert.equal(tty.lines[preview + 2], "over 3 of 3 peers: east, north, south");
    assert.ok(tty.lines.includes(`the full result is in ${csv}`), tty.lines.join("\n"));
    const rows = (await Deno.readTextFile(csv)).trim().split("\n");
    assert.equal(rows[0], "index,value");
    assert.deepEqual(rows.slice(1), total.map((t, i) => `${i},${t}`));
    // Piped: every value on stdout; no --result needed.
    const piped = await askText(processes, control, ["vector", "v"]);
    assert.deepEqual(piped.lines, [
      `vector: [${total.join(", ")}]`,
      "over 3 of 3 peers: east, north, south",
    ]);
    // A terminal without --result: the values go to a named file in the working folder.
    const named = await askText(processes, control, ["vector", "v"], { terminal: true, cwd: dir });
    const file = named.lines.map((l) => /^all 25 values: (\S+)$/.exec(l)?.[1]).find((f) => f);
    assert.ok(file?.startsWith(join(dir, "sumshare-result-")), named.lines.join("\n"));
    assert.equal((await Deno.readTextFile(file!)).trim().split("\n").length, 26);
    assert.equal((await Deno.stat(file!)).mode! & 0o777, 0o600);

    // A histogram on a terminal: bars, each row with its bin's edges and count.
    const all = sites.flatMap((s) => s.cells.map(scaled));
    const expected = plain(all, { low: 0n, high: 4000n, count: 4 });
    const bars = await askText(processes, control, ["histogram", "chol", "0:400:4"], {
      terminal: true,
    });
    const head = bars.lines.indexOf(`histogram: 4 bins, ${all.length} values`);
    assert.ok(head >= 0, bars.lines.join("\n"));
    ["[0, 100)", "[100, 200)", "[200, 300)", "[300, 400]"].forEach((label, i) => {
      const row = bars.lines[head + i + 1]!;
      assert.ok(row.trimStart().startsWith(label), row);
      assert.ok(row.endsWith(` ${expected.histogram[i]}`), row);
      assert.equal(/█/.test(row), expected.histogram[i]! > 0, row);
    });
    // Piped: the counts and the edges as lists.
    const listed = await askText(processes, control, ["histogram", "chol", "0:400:4"]);
    assert.equal(listed.lines[0], `histogram: [${expected.histogram.join(", ")}]`);
    assert.equal(listed.lines[1], "bin edges: [0, 100, 200, 300, 400]");

    // A variance says which is which.
    const spread = variances(all);
    const v = await askText(processes, control, ["variance", "chol"]);
    const line = (label: string) =>
      v.lines.find((l) => l.startsWith(`${label}: `))?.slice(label.length + 2);
    assert.equal(Number(line("variance (population, divided by n)")), spread.population);
    assert.equal(Number(line("variance (sample, divided by n - 1)")), spread.sample);
    assert.equal(Number(line("standard deviation (population)")), Math.sqrt(spread.population));
    assert.equal(Number(line("standard deviation (sample)")), Math.sqrt(spread.sample));

    // JSON: the same statistics, the edges, and max unscaled (the field integer beside it).
    const report = resultOf(
      await ask(processes, control, ["--threshold", "2", "variance", "chol"]),
    ) as unknown as Report;
    const result = report.result;
    assert.equal(result["variance"], spread.population);
    assert.equal(result["sampleVariance"], spread.sample);
    assert.equal(result["sampleStandardDeviation"], Math.sqrt(spread.sample));
    assert.equal(report["max"], "400");
    assert.equal(report["maxScaled"], "4000");
    assert.equal(report["mode"], "threshold");
    const h = resultOf(await ask(processes, control, ["histogram", "chol", "0:400:4"]));
    assert.deepEqual(h.result["binEdges"], [0, 100, 200, 300, 400]);
  });
});

Deno.test("hospital: the set on stdout, bars on a terminal, stamped logs; --json failures are an error object", async () => {
  const pki = await makePki(["hospital", "alice", "bob"]);
  await scenario([pki], async (processes: CliProcess[]) => {
    // A usage error and a round that fails, as JSON on stdout.
    const usage = recorder(false);
    assert.equal(await main(["hospital", "--json", "--peers", "1"], usage.io), 2);
    assert.equal(JSON.parse(usage.out[0]!).error.kind, "usage");
    const lonely = recorder(false);
    const code = await main([
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      "2",
      "--certs",
      pki,
      "--json",
      "--join-timeout",
      "0.3",
    ], lonely.io);
    assert.equal(code, 1);
    const failure = JSON.parse(lonely.out[0]!);
    assert.equal(failure.error.kind, "round");
    assert.match(failure.error.message, /waiting for peers to connect.*0 of 2 connected/);

    const tty = recorder(true, true);
    const listening = Promise.withResolvers<string>();
    const io = {
      ...tty.io,
      err: (line: string) => {
        tty.err.push(line);
        const m = / listening on (\S+)$/.exec(line);
        if (m) listening.resolve(m[1]!);
      },
    };
    const round = main([
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      "2",
      "--certs",
      pki,
      "--query",
      "histogram:0:10:3",
      "--timeout",
      "10",
    ], io);
    const address = await Promise.race([
      listening.promise,
      round.then(() => {
        throw new Error(`the hospital ended: ${tty.err.join("\n")}`);
      }),
    ]);
    processes.push(
      spawnPeer(pki, "alice", "3", address),
      spawnPeer(pki, "bob", "10", address),
    );
    assert.equal(await round, 0, tty.err.join("\n"));
    assert.equal(tty.out[0], "histogram: 3 bins, 2 values");
    const edges = binEdges(0n, 10n, 3, 0);
    assert.ok(tty.out[1]!.trimStart().startsWith(`[0, ${edges[1]})`), tty.out[1]);
    assert.ok(tty.out[1]!.endsWith(" 1"), "3 is in the first of 0:10:3");
    assert.ok(tty.out[2]!.endsWith(" 0"));
    assert.ok(tty.out[3]!.trimStart().startsWith(`[${edges[2]}, 10]`), "HIGH is in the last bin");
    assert.ok(tty.out[3]!.endsWith(" 1"));
    assert.equal(tty.out[4], "over 2 of 2 peers: alice, bob");
    assert.ok(
      tty.err.every((l) =>
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /.test(l) || /^session /.test(l)
      ),
      tty.err.join("\n"),
    );
    for (const p of processes) assert.equal((await p.finish()).code, 0);
  });
});

Deno.test("presentation: a threshold result names K of N, a CSV row per bin, edges exact when they terminate", async () => {
  assert.deepEqual(binEdges(0n, 10n, 4, 0), [0, 2.5, 5, 7.5, 10]);
  assert.deepEqual(binEdges(1000n, 4000n, 3, 1), [100, 200, 300, 400]);
  assert.deepEqual(binEdges(0n, 10n, 3, 0), [0, 10 / 3, 20 / 3, 10]);
  const report: Report = {
    result: { histogram: [2, 0, 5], binEdges: [0, 1.5, 3, 4.5] },
    session: "s",
    participants: ["alice", "bob", "carol", "dave"],
    contributors: ["alice", "bob", "dave"],
  };
  const out: string[] = [];
  await presentReport(report, { out: (l) => out.push(l), err: () => {} });
  assert.equal(out.at(-1), "over 3 of 4 peers: alice, bob, dave");
  assert.equal(resultCsv(report), "bin,low,high,count\n0,0,1.5,2\n1,1.5,3,0\n2,3,4.5,5\n");
  const chart = barChart([1, 0, 80], [0, 1, 2, 3]);
  assert.match(chart[1]!, /^ {2}\[0, 1\) .+ 1$/, "a bin with one value still shows a sliver");
  assert.match(chart[2]!, /^ {2}\[1, 2\) 0$/);
  assert.equal(chart[3]!.match(/█/g)?.length, 40);
});
