/** The command line's contract: help, usage errors (exit 2) and refusals before anything is sent. */
import assert from "node:assert/strict";
import {
  assertValueNotPrinted,
  cliCommand,
  hospitalArgs,
  makePki,
  removeDir,
  scenario,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";
import {
  assertRefusedBeforeListening,
  finishStar,
  hospitalOutcome,
  runDemo,
  startStar,
} from "./scenarios.ts";

Deno.test("--help for every command exits 0 and names its options", async () => {
  const expectations: [string[], RegExp][] = [
    [["--help"], /Commands:\n {2}run .*\n {2}hospital .*\n {2}peer .*\n {2}certs .*\n/],
    [["hospital", "--help"], /--listen HOST:PORT[\s\S]*--peers N[\s\S]*--max R[\s\S]*--json/],
    [["peer", "-h"], /--value V[\s\S]*--hospital HOST:PORT[\s\S]*--timeout SEC/],
    [["certs", "--help"], /--names LIST[\s\S]*--hosts LIST[\s\S]*--force/],
    [["run", "--help"], /--values LIST[\s\S]*--peers N[\s\S]*--scale S/],
  ];
  for (const [args, pattern] of expectations) {
    const r = await runMain(args);
    assert.equal(r.code, 0, args.join(" "));
    assert.match(r.out, pattern);
  }
  // A peer only connects out: its help offers no address of its own.
  assert.doesNotMatch((await runMain(["peer", "--help"])).out, /--listen|--advertise/);
});

Deno.test("--min-contributors goes with --neighbors alone: it is a threshold round (review 18)", async () => {
  // Past the usage checks the hospital reads its credentials, which are not
  // there: exit 1, not the usage error (2) that refused this before.
  const args = ["hospital", "--listen", "127.0.0.1:0", "--peers", "20", "--neighbors", "6"];
  const r = await runMain([...args, "--min-contributors", "3", "--certs", "/nonexistent"]);
  assert.equal(r.code, 1, r.err);
  assert.doesNotMatch(r.err, /goes with --threshold/);
  const additive = await runMain([
    "hospital",
    "--listen",
    "127.0.0.1:0",
    "--peers",
    "3",
    "--min-contributors",
    "3",
  ]);
  assert.equal(additive.code, 2);
  assert.match(additive.err, /--min-contributors goes with --threshold or --neighbors/);
});

Deno.test("usage errors exit 2 with a hint", async () => {
  const cases: [string[], RegExp][] = [
    [[], /Usage: sumshare <command>/],
    // The overview's help, not a page of a command that does not exist (review 17).
    [["launch"], /Unknown command "launch"\nTry 'sumshare --help'\./],
    // A served role's usage error points at its own page (review 18).
    [["hospital", "--serve", "--bogus"], /Try 'sumshare hospital --serve --help'\./],
    [["peer", "--serve", "--bogus"], /Try 'sumshare peer --serve --help'\./],
    [["hospital", "--peers", "3"], /Missing required option --listen/],
    [["hospital", "--listen", "127.0.0.1:0"], /Missing required option --peers/],
    [["hospital", "--listen", "nowhere", "--peers", "3"], /Invalid --listen/],
    [
      ["hospital", "--listen", "127.0.0.1:0", "--peers", "1"],
      /--peers: expected a whole number from 2/,
    ],
    [
      ["hospital", "--listen", "127.0.0.1:0", "--peers", "3", "--timeout", "-1"],
      /Invalid --timeout/,
    ],
    [
      ["hospital", "--listen", "127.0.0.1:0", "--peers", "3", "--bogus"],
      /Unknown option --bogus\n/,
    ],
    [["hospital", "--listen", "127.0.0.1:0", "--peers", "3", "--peers", "4"], /more than once/],
    [["peer", "--value", "1", "--hospital", "127.0.0.1:1"], /Missing required option --name/],
    [["peer", "--name", "Alice", "--value", "1", "--hospital", "127.0.0.1:1"], /Invalid --name/],
    [
      ["peer", "--name", "alice", "--value", "1", "--hospital", "127.0.0.1:0"],
      /Invalid --hospital/,
    ],
    // A peer never listens: the mesh's address options are gone.
    [
      [
        "peer",
        "--name",
        "alice",
        "--value",
        "1",
        "--hospital",
        "127.0.0.1:1",
        "--advertise",
        "a:1",
      ],
      /Unknown option --advertise\n/,
    ],
    [
      ["peer", "--name", "hospital", "--value", "1", "--hospital", "127.0.0.1:1"],
      /hospital's name/,
    ],
    [["certs"], /Missing required option --names/],
    [["run", "--values", "1,2", "--peers", "3"], /either --values or --peers/],
    [["run", "--values", "5"], /give 2 to/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runMain(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err + r.out, pattern, args.join(" "));
  }
});

Deno.test("non-numbers and too many decimals are refused at start, without echoing them", async () => {
  for (const value of ["3.25", "0x1f", "seventeen", "", "12,abc", "1.5e-1"]) {
    const r = await runMain([
      "peer",
      "--name",
      "alice",
      "--value",
      value,
      "--hospital",
      "127.0.0.1:1",
    ]);
    assert.equal(r.code, 2, value);
    assert.match(r.err, /Invalid --value/);
    if (value.length > 1) assert.ok(!r.err.includes(value), `error echoes ${value}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    await Deno.writeTextFile(`${dir}/data.txt`, "1\n2\n3.5\nfour\n");
    const r = await runMain([
      "peer",
      "--name",
      "alice",
      "--input",
      `${dir}/data.txt`,
      "--hospital",
      "127.0.0.1:1",
    ]);
    assert.equal(r.code, 2);
    assert.match(r.err, /Invalid --input line 3: has more than 0 decimal places/);
    const scaled = await runMain([
      "peer",
      "--name",
      "alice",
      "--input",
      `${dir}/data.txt`,
      "--scale",
      "1",
      "--hospital",
      "127.0.0.1:1",
    ]);
    assert.match(scaled.err, /Invalid --input line 4: not a number/);
    assert.ok(!scaled.err.includes("four"));
  } finally {
    await removeDir(dir);
  }
});

/** A hospital for three peers, printing plain text. */
const THREE = { peers: 3, json: false } as const;
/** Credentials that do not exist: a hospital past its checks fails on them with exit 1. */
const NO_CERTS = "/nonexistent";

Deno.test("a round that cannot be represented is refused before the hospital listens", async () => {
  const dir = await makePki(["hospital"]);
  // 3 × R = p + 1: each element takes two residues, so the vector doubles in length.
  const terms = (query: string) => ["--query", query, "--max", "1501199875790150"];
  try {
    const r = await hospitalOutcome(dir, terms("vector:16777216"), THREE);
    assertRefusedBeforeListening(r, /needs vectors of 33554432 field elements/);
    assert.match(r.stderr, /more than the limit of 16777216/);
    // Half the length fits with its residues: the check is exact, not a rough bound.
    const ok = await runMain(hospitalArgs(NO_CERTS, THREE, terms("vector:8388608")));
    assert.equal(ok.code, 1, "passes the layout check and fails later, on the missing credentials");
    assert.match(ok.err, /Cannot read CA certificate/);
    // The default R = 2^30 at --scale 7 is 2^30 × 10^7 ≥ p: a usage error
    // (exit 2) before listening, for the hospital and for the demo.
    const scaled = await runMain(hospitalArgs(dir, THREE, ["--scale", "7", "--timeout", "1"]));
    assert.equal(scaled.code, 2, scaled.err);
    assert.match(scaled.err, /R must be from 0 to below p = 4503599627370449/);
    assert.doesNotMatch(scaled.err, /listening on/);
    const below = await runMain(hospitalArgs(NO_CERTS, THREE, ["--scale", "6"]));
    assert.equal(below.code, 1, "2^30 × 10^6 is below p: past the layout, failing on credentials");
    assert.match(below.err, /Cannot read CA certificate/);
    const demo = await runMain(["run", "--scale", "7", "--timeout", "5"]);
    assert.equal(demo.code, 2, demo.err);
    assert.match(demo.err, /R must be from 0 to below p/);
    assert.doesNotMatch(demo.out, /made a throwaway PKI/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a value above the round's R is refused at the peer before any share is sent", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (processes) => {
    const peers = [["alice", ["--value", "987654"]], ["bob", ["--value", "99"]]] as const;
    const end = await finishStar(
      await startStar(processes, dir, peers, { json: false, hospitalArgs: ["--max", "100"] }),
    );
    const [hr, ar, br] = [end.hospital, end.peers.get("alice")!, end.peers.get("bob")!];
    assert.equal(ar.code, 1);
    assert.match(ar.stderr, /refused the round: input refused: --value: outside \[0, R = 100\]/);
    assertValueNotPrinted(ar.stderr, 987654);
    // alice answered the invitation with REFUSE, and nothing else.
    assert.deepEqual(ar.stderr.match(/^sending \w+$/gm), ["sending refuse"]);
    assert.match(hr.stderr, /alice refused: /);
    assert.equal(hr.code, 1);
    assert.equal(hr.stdout, "");
    assertValueNotPrinted(hr.stderr, 987654);
    assert.equal(br.code, 1);
    // The round never started: bob sent no masked input.
    assert.doesNotMatch(br.stderr, /sending (input|sealed)/);
  });
});

Deno.test("a mistyped option is named, with the closest known one, and its value is never echoed", async () => {
  const cases: [string[], string][] = [
    [["peer", "--valeu", "98765"], "Unknown option --valeu (did you mean --value?)"],
    [["peer", "--valeu=98765"], "Unknown option --valeu (did you mean --value?)"],
    [
      ["peer", "--name", "alice", "--inptu=98765.csv"],
      "Unknown option --inptu (did you mean --input?)",
    ],
    [["hospital", "--listn", "127.0.0.1:0"], "Unknown option --listn (did you mean --listen?)"],
    [["hospital", "--peer", "3"], "Unknown option --peer (did you mean --peers?)"],
    [["hospital", "--timeotu", "5"], "Unknown option --timeotu (did you mean --timeout?)"],
    [
      ["peer", "--hopsital-nmae", "h"],
      "Unknown option --hopsital-nmae (did you mean --hospital-name?)",
    ],
    [["run", "--scael", "2"], "Unknown option --scael (did you mean --scale?)"],
    [["verify", "x.json", "--cq", "ca.crt"], "Unknown option --cq (did you mean --ca?)"],
    // Nothing close: no guess.
    [["hospital", "--bogus"], "Unknown option --bogus"],
    [["peer", "--x=98765"], "Unknown option --x"],
    [["peer", "-x"], "Unknown option -x"],
  ];
  for (const [args, expected] of cases) {
    const r = await runMain(args);
    assert.equal(r.code, 2, args.join(" "));
    const first = r.err.split("\n")[0];
    assert.equal(first, `sumshare: ${expected}`, args.join(" "));
    assertValueNotPrinted(r.err + r.out, 98765, args.join(" "));
    assert.doesNotMatch(r.err, /To specify a positional/, "no node boilerplate");
  }
});

Deno.test("sumshare run --scale passes the scale to every party and sums decimals exactly", async () => {
  // Without --scale the hint points at an option run now has.
  const refused = await runMain(["run", "--values", "1.5,2"]);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /Invalid --values: has more than 0 decimal places \(use --scale\)/);
  assert.equal((await runMain(["run", "--scale", "16"])).code, 2);
  const stdout = await runDemo(["--values", "1.5,2.25", "--scale", "2"]);
  assert.match(stdout, /secure sum \(from the hospital\): 3\.75\n/);
  assert.match(stdout, /plaintext total \(demo only\): +3\.75\n/);
  assert.match(stdout, /match: yes/);
});

Deno.test("hospital --neighbors auto shows the K and T it chose (100 peers: 18, 13)", async () => {
  const pki = await makePki(["hospital"]);
  try {
    const [deno, ...args] = cliCommand();
    const out = await new Deno.Command(deno!, {
      args: [
        ...args,
        ...hospitalArgs(pki, { peers: 100, json: false }, [
          "--neighbors",
          "auto",
          "--join-timeout",
          "1",
        ]),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.match(
      err,
      /sparse pairing: each peer pairs with 18 neighbours, threshold 13 per neighbourhood \(chosen for 100 peers, 5 % colluders and 5 % dropouts\)/,
    );
  } finally {
    await removeDir(pki);
  }
});
