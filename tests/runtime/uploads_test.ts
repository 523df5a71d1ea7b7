/**
 * The runtime's half of bounded uploads (lib/runtime/uploads.ts), which both
 * hospitals use, over fake connections that record what is asked of them: a
 * party may hold two frames unread until it is sent PROCEED and its whole
 * masked input after; its upload is timed from PROCEED and INPUT until its
 * last chunk arrives, its connection goes or the phase ends; its connection
 * gives back its chunk room once a round, however many "last" chunks come.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Connection } from "../../lib/net/connection.ts";
import {
  acceptFullFrames,
  UNADMITTED_UNREAD_CAP,
  unreadCap,
  UploadControl,
} from "../../lib/runtime/uploads.ts";
import { CHUNK_ELEMENTS, type Message } from "../../lib/wire/messages.ts";

/** What a hospital asked of one connection. */
interface Asked {
  raised: number;
  caps: number[];
  compacted: number;
}

function fakeConnection(): { conn: Connection; asked: Asked } {
  const asked: Asked = { raised: 0, caps: [], compacted: 0 };
  const conn = {
    raiseLimit: () => void asked.raised++,
    setMaxBufferedBytes: (bytes: number) => void asked.caps.push(bytes),
    compact: () => void asked.compacted++,
    stats: { bytesIn: 0, bytesOut: 0 },
  } as unknown as Connection;
  return { conn, asked };
}

/** Only the type matters to UploadControl; the rest of each message is never read. */
function message(type: string): Message {
  return { type } as unknown as Message;
}

const DIMENSION = 3 * CHUNK_ELEMENTS; // three chunks: 0, 1, 2
const LAST = 2;

function control(names: string[]) {
  const conns = new Map(names.map((name) => [name, fakeConnection()]));
  const stalls: string[] = [];
  const uploads = new UploadControl({
    dimension: DIMENSION,
    stallMs: 60_000, // never fires within a test: what is timed is read from `watching`
    connection: (name) => conns.get(name)?.conn,
    onStall: (name) => stalls.push(name),
  });
  return { uploads, asked: (name: string) => conns.get(name)!.asked, stalls };
}

Deno.test("uploads: a party holds two frames unread until PROCEED, then its whole masked input", () => {
  const { conn, asked } = fakeConnection();
  acceptFullFrames(conn);
  assert.equal(asked.raised, 1);
  assert.deepEqual(asked.caps, [UNADMITTED_UNREAD_CAP]);

  const c = control(["alice"]);
  try {
    c.uploads.sending("alice", message("confirmations"));
    c.uploads.sending("alice", message("input"));
    assert.deepEqual(c.asked("alice").caps, [], "only PROCEED raises the cap");
    c.uploads.sending("alice", message("proceed"));
    assert.deepEqual(c.asked("alice").caps, [unreadCap(DIMENSION)]);
    assert.ok(unreadCap(DIMENSION) > UNADMITTED_UNREAD_CAP);
  } finally {
    c.uploads.stop();
  }
});

Deno.test("uploads: an upload is timed from PROCEED and INPUT, in either order, until its last chunk arrives", () => {
  const c = control(["alice", "bob"]);
  try {
    c.uploads.sending("alice", message("proceed"));
    assert.equal(c.uploads.watching, 0, "PROCEED alone: alice may still be masking");
    c.uploads.receiving("alice", message("confirm"));
    assert.equal(c.uploads.watching, 0, "only INPUT starts the clock");
    c.uploads.receiving("alice", message("input"));
    assert.equal(c.uploads.watching, 1);
    c.uploads.receiving("bob", message("input"));
    c.uploads.receiving("bob", message("confirm"));
    assert.equal(c.uploads.watching, 1, "INPUT alone: bob is still queued");
    c.uploads.sending("bob", message("proceed"));
    assert.equal(c.uploads.watching, 2);

    c.uploads.chunkArriving("alice", 0);
    c.uploads.chunkArriving("alice", 1);
    assert.equal(c.uploads.watching, 2, "a chunk before the last keeps the watch");
    c.uploads.chunkArriving("alice", LAST);
    assert.equal(c.uploads.watching, 1);
    c.uploads.lost("bob");
    assert.equal(c.uploads.watching, 0);
    assert.deepEqual(c.stalls, []);
  } finally {
    c.uploads.stop();
  }
});

Deno.test("uploads: past the masked-input phase nothing is timed", () => {
  const c = control(["alice", "bob"]);
  try {
    c.uploads.sending("alice", message("proceed"));
    c.uploads.receiving("alice", message("input"));
    c.uploads.phase("input");
    assert.equal(c.uploads.watching, 1);
    c.uploads.phase("consistency");
    assert.equal(c.uploads.watching, 0);
    // And nothing is armed after it (a late PROCEED/INPUT pair).
    c.uploads.sending("bob", message("proceed"));
    c.uploads.receiving("bob", message("input"));
    assert.equal(c.uploads.watching, 0);
  } finally {
    c.uploads.stop();
  }
});

Deno.test("uploads: a connection gives back its chunk room after the last chunk, once a round", () => {
  const c = control(["alice", "bob"]);
  try {
    c.uploads.chunkHandled("alice", 0, 1024);
    c.uploads.chunkHandled("alice", 1, 1024);
    assert.equal(c.asked("alice").compacted, 0, "not before the last chunk");
    c.uploads.chunkHandled("alice", LAST, 1024);
    assert.equal(c.asked("alice").compacted, 1);
    // A party sending "last" chunks over and over (review 5, R5-2).
    for (let i = 0; i < 5; i++) c.uploads.chunkHandled("alice", LAST, 1024);
    assert.equal(c.asked("alice").compacted, 1);
    assert.equal(c.asked("bob").compacted, 0);
    c.uploads.chunkHandled("bob", LAST, 1024);
    assert.equal(c.asked("bob").compacted, 1);
  } finally {
    c.uploads.stop();
  }
});
