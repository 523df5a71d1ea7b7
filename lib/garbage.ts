/**
 * Prompt release of short-lived buffers.
 *
 * Every Web Crypto call returns a fresh ArrayBuffer: each 256 KiB of mask
 * keystream, each sealed or opened 512 KiB chunk. V8 frees such a buffer only
 * when a garbage collection finds it dead, and its heuristics for memory held
 * outside the JavaScript heap let tens of MiB of them pile up first, because
 * the small JavaScript objects that own them never fill the young generation.
 * Measured on one peer expanding nine 2^20-element masks: 38 MiB above its
 * vector without help, 11.5 MiB with a young-generation collection after each
 * refill.
 *
 * So code that makes such buffers reports their size here, and once a couple
 * of MiB have built up a young-generation (minor) collection runs: well under
 * a millisecond with a heap this small. It needs V8's `gc` extension, which
 * the tasks and the compiled executable enable with `--v8-flags=--expose-gc`;
 * without it this does nothing and memory is merely higher.
 *
 * @module
 */

/** Short-lived bytes allowed to build up between collections. */
const BUDGET_BYTES = 2 * 1024 * 1024;

type GcExtension = (options?: { type?: "minor" | "major" }) => void;

const collect = (globalThis as { gc?: GcExtension }).gc;
let pending = 0;

/** Notes `bytes` of buffers just made dead; collects the young generation once enough built up. */
export function releaseGarbage(bytes: number): void {
  if (collect === undefined) return;
  pending += bytes;
  if (pending < BUDGET_BYTES) return;
  pending = 0;
  collect({ type: "minor" });
}
