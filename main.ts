/**
 * sumshare: give a hospital the sum of the peers' private values without
 * anyone learning a single value. See README.md.
 *
 * @module
 */

import { main } from "./lib/cli.ts";
import { exitCodeAfterInterrupt } from "./lib/interrupt.ts";

if (import.meta.main) {
  Deno.exit(await exitCodeAfterInterrupt(await main(Deno.args)));
}
