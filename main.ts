/**
 * sumshare: give a hospital the sum of the peers' private values without
 * anyone learning a single value. See README.md.
 *
 * @module
 */

import { main } from "./lib/cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
