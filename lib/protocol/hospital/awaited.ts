/**
 * Who a phase still awaits, for each state's `waiting()`: whether some
 * party of a fixed list is still live and has not answered.
 *
 * `settle()` asks after every message, and a scan of the whole list each
 * time made a phase cost O(n²): at 3,000 peers the share phase's scans took
 * 30× their time at 1,000 (hospital `--cpu-prof`, 2026-12-02). Both
 * conditions only ever turn false — an answer is kept, a dropped party
 * stays dropped — so a party passed once is never awaited again, and the
 * scan goes on from where the last one stopped: O(n) for the whole phase.
 *
 * @module
 */

/** A monotone scan over the parties a phase waits for. */
export class Awaited {
  readonly #names: readonly string[];
  #next = 0;

  /** `names`: everyone the phase waits for, fixed for the phase. */
  constructor(names: readonly string[]) {
    this.#names = names;
  }

  /**
   * Whether some party is still awaited. `awaited(name)` must be true of a
   * party until it answers or is dropped and false from then on (callers
   * pass "live and not answered").
   */
  any(awaited: (name: string) => boolean): boolean {
    const names = this.#names;
    while (this.#next < names.length && !awaited(names[this.#next]!)) this.#next++;
    return this.#next < names.length;
  }
}
