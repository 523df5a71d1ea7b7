/**
 * A progress bar for long transfers, on stderr and only when stderr is a
 * terminal, so logs and pipes stay clean.
 *
 * @module
 */

/** Reports progress: what, elements done, elements in all. */
export type ProgressReporter = (label: string, done: number, total: number) => void;

/** A reporter drawing on the terminal, or undefined when stderr is not one. */
export function terminalProgress(): ProgressReporter | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const encoder = new TextEncoder();
  let last = 0;
  return (label, done, total) => {
    const now = performance.now();
    if (done < total && now - last < 100) return; // at most ten redraws a second
    last = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    const bar = "#".repeat(filled) + ".".repeat(width - filled);
    const percent = Math.floor((done / total) * 100);
    const line = `\r${label} [${bar}] ${percent}%${done >= total ? "\n" : ""}`;
    Deno.stderr.writeSync(encoder.encode(line));
  };
}
