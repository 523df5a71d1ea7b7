/**
 * A round's report for people, shared by the one-shot `hospital` and `ask`.
 * Every value reaches the user: a long vector is previewed on a terminal
 * only, and then its every value is in a file the output names (`--result
 * FILE`, or a fresh file in the working folder); piped output carries every
 * value. A histogram is drawn as a bar chart on a terminal, with its bin
 * edges; a variance says which is the population and which the sample one;
 * and the set the result is over is named ("over 3 of 4 peers: alice, …").
 *
 * @module
 */

import { extname, resolve } from "node:path";
import { FileError, UsageError } from "../errors.ts";
import { probeWritable } from "../writable.ts";
import type { Report } from "./report.ts";

/** Where the presentation writes, and whether stdout is a terminal. */
export interface Screen {
  out(line: string): void;
  err(line: string): void;
  /** stdout is a terminal: previews and charts instead of every number. */
  terminal?: boolean;
}

/** A vector longer than this is previewed on a terminal. */
export const PREVIEW_LIMIT = 20;
const PREVIEW_VALUES = 10;
const BAR_WIDTH = 40;

const LABELS: Record<string, string> = {
  variance: "variance (population, divided by n)",
  sampleVariance: "variance (sample, divided by n - 1)",
  standardDeviation: "standard deviation (population)",
  sampleStandardDeviation: "standard deviation (sample)",
  sumOfSquares: "sum of squares",
  varianceExact: "variance (population, exact)",
};

/** One statistic for people: arrays shortened when long, saying how many are left out. */
export function formatStatistic(value: unknown): string {
  if (Array.isArray(value) && value.length > PREVIEW_LIMIT) {
    return `[${value.slice(0, PREVIEW_VALUES).join(", ")}, … ${
      value.length - PREVIEW_VALUES
    } more]`;
  }
  return Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
}

/** Refuses, before any round, a `--result` FILE that is not .csv or .json or cannot be written. */
export async function checkResultTarget(path: string): Promise<void> {
  formatOf(path);
  try {
    await probeWritable(path);
  } catch (cause) {
    throw new UsageError(
      `Invalid --result ${path}: cannot write it (${(cause as Error).message})`,
      {
        cause,
      },
    );
  }
}

function formatOf(path: string): "csv" | "json" {
  const ext = extname(path).toLowerCase();
  if (ext === ".csv") return "csv";
  if (ext === ".json") return "json";
  throw new UsageError(`Invalid --result ${path}: the name must end in .csv or .json`);
}

/** The report as CSV: one row per vector element, histogram bin or statistic. */
export function resultCsv(report: Report): string {
  const { result } = report;
  const rows: string[] = [];
  const cell = (v: unknown) => (v === null ? "" : String(v));
  if (Array.isArray(result["vector"])) {
    rows.push("index,value");
    result["vector"].forEach((v, i) => rows.push(`${i},${cell(v)}`));
  } else if (Array.isArray(result["histogram"])) {
    const edges = result["binEdges"] as unknown[];
    rows.push("bin,low,high,count");
    result["histogram"].forEach((c, i) =>
      rows.push(`${i},${cell(edges[i])},${cell(edges[i + 1])},${cell(c)}`)
    );
  } else {
    rows.push("statistic,value");
    for (const [key, value] of Object.entries(result)) rows.push(`${key},${cell(value)}`);
  }
  return rows.join("\n") + "\n";
}

/** Writes the whole report to `path`, CSV or JSON by its extension, readable by the owner only. */
export async function writeResultFile(path: string, report: Report): Promise<void> {
  const text = formatOf(path) === "csv"
    ? resultCsv(report)
    : JSON.stringify(report, null, 2) + "\n";
  try {
    await Deno.writeTextFile(path, text, { mode: 0o600 });
  } catch (cause) {
    throw new FileError(`Cannot write the result to ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Options for {@linkcode presentReport}. */
export interface PresentOptions {
  /** `--result FILE`: every value goes there too. */
  resultFile?: string | undefined;
  /** Prefixes the stderr line naming the session (e.g. the variable). */
  label?: string;
}

/** Prints `report` for people; see the module documentation. */
export async function presentReport(
  report: Report,
  screen: Screen,
  options: PresentOptions = {},
): Promise<void> {
  const { result } = report;
  const terminal = screen.terminal === true;
  let file = options.resultFile;
  const vector = result["vector"];
  const long = Array.isArray(vector) && vector.length > PREVIEW_LIMIT;
  if (file === undefined && terminal && long) {
    // Previewed on the screen, so every value must be somewhere: a fresh file here.
    file = resolve(`sumshare-result-${report["session"]}.csv`);
  }
  if (file !== undefined) await writeResultFile(file, report);
  for (const [key, value] of Object.entries(result)) {
    if (key === "binEdges") continue;
    if (key === "histogram" && Array.isArray(value)) {
      const edges = result["binEdges"] as unknown[];
      if (terminal) {
        for (const line of barChart(value as number[], edges)) screen.out(line);
      } else {
        screen.out(`histogram: [${value.join(", ")}]`);
        screen.out(`bin edges: [${edges.join(", ")}]`);
      }
      continue;
    }
    if (key === "vector" && Array.isArray(value) && terminal && long) {
      screen.out(
        `vector (${value.length} values): [${value.slice(0, PREVIEW_VALUES).join(", ")}, …]`,
      );
      screen.out(`all ${value.length} values: ${file}`);
      continue;
    }
    const text = Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
    screen.out(`${LABELS[key] ?? key}: ${text}`);
  }
  const contributors = report["contributors"] as string[];
  const participants = report["participants"] as string[];
  screen.out(
    `over ${contributors.length} of ${participants.length} peers: ${contributors.join(", ")}`,
  );
  screen.err(`${options.label ? `${options.label}, ` : ""}session ${report["session"]}`);
  if (file !== undefined) screen.err(`the full result is in ${file}`);
}

/** A histogram as bars, each row its bin's edges and count; the longest bar is BAR_WIDTH. */
export function barChart(counts: readonly number[], edges: readonly unknown[]): string[] {
  const most = Math.max(1, ...counts);
  const labels = counts.map((_, i) =>
    `[${edges[i]}, ${edges[i + 1]}${i === counts.length - 1 ? "]" : ")"}`
  );
  const width = Math.max(...labels.map((l) => l.length));
  const total = counts.reduce((a, b) => a + b, 0);
  const lines = [`histogram: ${counts.length} bins, ${total} values`];
  counts.forEach((count, i) => {
    // A bin with any value gets at least a sliver: an empty-looking bar must mean zero.
    const eighths = count === 0 ? 0 : Math.max(1, Math.round((count / most) * BAR_WIDTH * 8));
    const bar = "█".repeat(Math.floor(eighths / 8)) + (["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][
      eighths % 8
    ] ?? "");
    lines.push(`  ${labels[i]!.padEnd(width)} ${bar}${bar ? " " : ""}${count}`);
  });
  return lines;
}
