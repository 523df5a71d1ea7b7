/**
 * Peer phase 6, Unmasking: revealed its shares; waiting for DONE, the
 * hospital's signed digest of the sum over the survivors set. Any further
 * UNMASK is late and ignored (one reveal per session).
 *
 * | message                                  | decision |
 * | ---------------------------------------- | -------- |
 * | DONE with a valid signature over S       | done     |
 * | DONE with a bad signature                | aborted  |
 *
 * @module
 */

import type { Message } from "../../wire/messages.ts";
import { acceptDone } from "./masked_input.ts";
import { PeerState } from "./state.ts";

/** Waiting for DONE. */
export class UnmaskingState extends PeerState {
  readonly phase = "unmask";

  protected async receive(message: Message): Promise<PeerState> {
    if (message.type !== "done") return this;
    return await acceptDone(this.ctx, message, this.ctx.survivors);
  }
}
