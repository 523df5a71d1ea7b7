/**
 * Log lines: every line a party logs starts with the time (ISO 8601, UTC),
 * so a consortium's logs can be lined up. Programs that read another
 * process's log (the demo, the simulator, the tests) take the stamp off
 * with {@linkcode unstamped} before they match a line.
 *
 * @module
 */

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

/** `line` with the current time in front. */
export function stamped(line: string): string {
  return `${new Date().toISOString()} ${line}`;
}

/** `line` without the time stamp {@linkcode stamped} put in front (unchanged if it has none). */
export function unstamped(line: string): string {
  return line.replace(STAMP, "");
}
