/**
 * Whether a file can be written, checked before the work whose result goes
 * there (a receipt, a result file) rather than after it: an existing file is
 * opened for writing and left as it is; a new one is created (owner only)
 * and removed again.
 *
 * @module
 */

/** Throws the file system's error if `path` cannot be written. */
export async function probeWritable(path: string): Promise<void> {
  try {
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    file.close();
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    const file = await Deno.open(path, { write: true });
    file.close();
  }
}
