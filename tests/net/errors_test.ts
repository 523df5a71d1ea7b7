/**
 * The mapping from raw TLS and socket failures to sentences
 * (lib/net/errors.ts), one case per text Deno 2.9.6 and its node:tls layer
 * were seen to produce here (the texts are copied from real runs: see the
 * integration tests for the live ones). Every sentence is one line, starts
 * "Cannot …", names what happened and what to check, carries none of the
 * raw text, and says "a bug" only for a socket used after it was closed.
 */
import assert from "node:assert/strict";
import { TimeoutError } from "../../lib/errors.ts";
import { type FailureContext, TransportError, transportError } from "../../lib/net/errors.ts";

const client: FailureContext = {
  action: "connect to the hospital at 127.0.0.1:4000",
  peer: "the hospital",
};
const server: FailureContext = {
  action: "accept a connection from 10.0.0.7:51234",
  peer: "the client",
};

/** A Deno error of class `name` (Deno.errors.X) with `message`. */
function deno(name: keyof typeof Deno.errors, message: string): Error {
  return new Deno.errors[name](message);
}

/** A node-style error with a `code`. */
function node(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

interface Case {
  raw: Error;
  context: FailureContext;
  reason: string;
  /** The whole message, or a pattern for it. */
  says: string | RegExp;
}

const RUSTLS_EOF =
  "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof";

const CASES: Case[] = [
  {
    raw: deno("InvalidData", "invalid peer certificate: BadSignature"),
    context: client,
    reason: "untrusted-certificate",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the certificate of the hospital is not issued by the consortium CA this party trusts (check that both use the same consortium's ca.crt)",
  },
  {
    raw: deno("InvalidData", "invalid peer certificate: UnknownIssuer"),
    context: client,
    reason: "untrusted-certificate",
    says: /the certificate of the hospital is not issued by the consortium CA/,
  },
  {
    raw: deno("InvalidData", "received fatal alert: DecryptError"),
    context: client,
    reason: "certificate-refused",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the hospital could not verify this party's certificate: it trusts another CA (check that both use the same consortium's ca.crt)",
  },
  {
    raw: node("received fatal alert: DecryptError", "ERR_SSL_SSLV3_ALERT_DECRYPT_ERROR"),
    context: server,
    reason: "certificate-refused",
    says:
      /^Cannot accept a connection from 10\.0\.0\.7:51234: the client could not verify this party's certificate/,
  },
  {
    raw: node("socket hang up", "ECONNRESET"),
    context: client,
    reason: "reset",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the hospital closed the connection abruptly (it stopped, or refused a certificate: check its log)",
  },
  {
    raw: deno("UnexpectedEof", RUSTLS_EOF),
    context: client,
    reason: "reset",
    says: /the hospital closed the connection abruptly/,
  },
  {
    raw: deno("UnexpectedEof", "unexpected end of file"),
    context: client,
    reason: "reset",
    says: /the hospital closed the connection abruptly/,
  },
  {
    raw: deno("ConnectionReset", "Connection reset by peer (os error 104)"),
    context: client,
    reason: "reset",
    says: /the hospital closed the connection abruptly/,
  },
  {
    raw: node("read ECONNRESET", "ECONNRESET"),
    context: server,
    reason: "reset",
    says: /the client closed the connection abruptly/,
  },
  {
    raw: deno("BrokenPipe", "Broken pipe (os error 32)"),
    context: client,
    reason: "broken-pipe",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the hospital closed the connection while this party was sending (it stopped, or refused this party: check its log)",
  },
  {
    raw: node("write EPIPE", "EPIPE"),
    context: server,
    reason: "broken-pipe",
    says: /the client closed the connection while this party was sending/,
  },
  {
    raw: deno("BadResource", "Bad resource ID"),
    context: client,
    reason: "bug",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the connection was used after this party closed it (this is a bug in sumshare: please report it)",
  },
  {
    raw: deno("Interrupted", "operation canceled"),
    context: client,
    reason: "bug",
    says: /this is a bug in sumshare/,
  },
  {
    raw: deno("ConnectionRefused", "Connection refused (os error 111)"),
    context: client,
    reason: "refused",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: connection refused (check the address and port, and that the hospital is running)",
  },
  {
    raw: node("connect ECONNREFUSED 127.0.0.1:4000", "ECONNREFUSED"),
    context: client,
    reason: "refused",
    says: /connection refused/,
  },
  {
    raw: deno("AddrInUse", "Address already in use (os error 98)"),
    context: { action: "listen on 0.0.0.0:4000", peer: "this machine" },
    reason: "address-in-use",
    says:
      "Cannot listen on 0.0.0.0:4000: the address is already in use (another process listens there: stop it or choose another port)",
  },
  {
    raw: node("listen EADDRINUSE: address already in use 127.0.0.1:4000", "EADDRINUSE"),
    context: { action: "listen on 127.0.0.1:4000", peer: "this machine" },
    reason: "address-in-use",
    says: /the address is already in use/,
  },
  {
    raw: node("listen EADDRNOTAVAIL: address not available 10.9.9.9:4000", "EADDRNOTAVAIL"),
    context: { action: "listen on 10.9.9.9:4000", peer: "this machine" },
    reason: "address-unavailable",
    says: /the address is not one of this machine's/,
  },
  {
    raw: new Error("failed to lookup address information: Name or service not known"),
    context: client,
    reason: "unknown-host",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: unknown host name (check the host part of the address)",
  },
  {
    raw: node("getaddrinfo ENOTFOUND nowhere.example", "ENOTFOUND"),
    context: client,
    reason: "unknown-host",
    says: /unknown host name/,
  },
  {
    raw: new Error("failed to lookup address information: Temporary failure in name resolution"),
    context: client,
    reason: "unknown-host",
    says: /cannot resolve the host name now \(check DNS, or give an IP address\)/,
  },
  {
    raw: deno("NetworkUnreachable", "Network is unreachable (os error 101)"),
    context: client,
    reason: "unreachable",
    says: /no route to the host/,
  },
  {
    raw: deno(
      "InvalidData",
      "invalid peer certificate: certificate expired: verification time 1796117396 (UNIX), but certificate is not valid after 1796030996 (86400 seconds ago)",
    ),
    context: client,
    reason: "expired-certificate",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the certificate of the hospital is expired or not yet valid (check both machines' clocks; renew it with `sumshare certs`)",
  },
  {
    raw: deno(
      "InvalidData",
      "invalid peer certificate: certificate not valid yet: verification time 1796117396 (UNIX), but certificate is not valid before 1796203796 (86400 seconds in future)",
    ),
    context: client,
    reason: "expired-certificate",
    says: /expired or not yet valid/,
  },
  {
    raw: deno(
      "InvalidData",
      'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("example.org")',
    ),
    context: client,
    reason: "name-mismatch",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the certificate of the hospital does not name host 127.0.0.1 (connect with a host name its certificate names, or reissue it with that host)",
  },
  {
    raw: deno("InvalidData", "received fatal alert: UnknownCA"),
    context: client,
    reason: "certificate-refused",
    says:
      /the hospital refused this party's certificate \(check that it is issued by the consortium CA/,
  },
  {
    raw: node("received fatal alert: BadCertificate", "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE"),
    context: server,
    reason: "certificate-refused",
    says: /the client refused this party's certificate/,
  },
  {
    raw: node(
      "received fatal alert: CertificateExpired",
      "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED",
    ),
    context: server,
    reason: "certificate-refused",
    says:
      /the client refused this party's certificate \(check that it is issued by the consortium CA, valid today/,
  },
  {
    raw: deno("InvalidData", "received fatal alert: CertificateRequired"),
    context: client,
    reason: "no-certificate",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: the hospital requires a client certificate and none was presented (give this party's certificate and key)",
  },
  {
    raw: node("peer sent no certificates", "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE"),
    context: server,
    reason: "no-certificate",
    says:
      "Cannot accept a connection from 10.0.0.7:51234: the client presented no certificate (only consortium members may connect, each with its own certificate)",
  },
  {
    raw: deno("InvalidData", "No keys found in key data"),
    context: client,
    reason: "credentials",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: this party's TLS certificate or key cannot be used (check that they are PEM files of the same party)",
  },
  {
    raw: new Error("keys may not be consistent: KeyMismatch"),
    context: client,
    reason: "credentials",
    says: /this party's TLS certificate or key cannot be used/,
  },
  {
    raw: deno("InvalidData", "No certificates found in certificate data"),
    context: client,
    reason: "credentials",
    says: /this party's TLS certificate or key cannot be used/,
  },
  {
    raw: node("unsupported protocol", "ERR_SSL_UNSUPPORTED_PROTOCOL"),
    context: server,
    reason: "credentials",
    says: /this party's TLS certificate or key cannot be used/,
  },
  {
    raw: node("write after end", "ERR_STREAM_WRITE_AFTER_END"),
    context: server,
    reason: "broken-pipe",
    says: /the client closed the connection while this party was sending/,
  },
  {
    raw: node(
      "peer is incompatible: SignatureAlgorithmsExtensionRequired",
      "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE",
    ),
    context: server,
    reason: "tls-version",
    says: /the client does not offer TLS 1\.2 or 1\.3/,
  },
  {
    raw: deno("InvalidData", "received fatal alert: ProtocolVersion"),
    context: client,
    reason: "tls-version",
    says: /the hospital does not offer TLS 1\.2 or 1\.3/,
  },
  {
    raw: node(
      "received corrupt message of type InvalidContentType (SSL routines:ssl3_get_record:wrong version number)",
      "ERR_SSL_WRONG_VERSION_NUMBER",
    ),
    context: server,
    reason: "not-tls",
    says: /the client does not speak TLS \(check the port/,
  },
  {
    raw: deno("InvalidData", "received corrupt message of type InvalidContentType"),
    context: client,
    reason: "not-tls",
    says: /the hospital does not speak TLS/,
  },
  {
    raw: deno("InvalidData", "received fatal alert: HandshakeFailure"),
    context: client,
    reason: "tls",
    says:
      /the hospital ended the TLS session with alert HandshakeFailure \(check that both run sumshare/,
  },
  {
    raw: node("TLS handshake timeout", "ERR_TLS_HANDSHAKE_TIMEOUT"),
    context: server,
    reason: "timeout",
    says:
      /^Cannot accept a connection from 10\.0\.0\.7:51234: timed out \(check that the client is running/,
  },
  {
    raw: new TimeoutError("no TLS connection within 300 ms"),
    context: client,
    reason: "timeout",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: no TLS connection within 300 ms (check that the hospital is running and reachable, and not overloaded)",
  },
  {
    raw: deno("TimedOut", "Connection timed out (os error 110)"),
    context: client,
    reason: "timeout",
    says: /timed out/,
  },
  {
    raw: deno(
      "NotCapable",
      'Requires net access to "10.0.0.1:4000", run again with the --allow-net flag',
    ),
    context: client,
    reason: "permission",
    says: /this program may not use that address \(run it with --allow-net for it\)$/,
  },
  {
    raw: new Error("something odd: https://example.org/why (os error 5)\nsecond line"),
    context: client,
    reason: "network",
    says:
      "Cannot connect to the hospital at 127.0.0.1:4000: something odd second line (check the network, and that the hospital is running)",
  },
];

/** Raw fragments that must never reach a user. */
const RAW =
  /BadSignature|DecryptError|close_notify|docs\.rs|https?:|socket hang up|os error|Bad resource ID|UnknownIssuer|InvalidContentType|ECONN|EPIPE|ERR_SSL/;

Deno.test("each raw TLS and socket failure maps to its reason and one plain sentence", () => {
  for (const { raw, context, reason, says } of CASES) {
    const mapped = transportError(raw, context);
    const label = `${raw.name}: ${raw.message}`;
    assert.ok(mapped instanceof TransportError, label);
    assert.equal(mapped.reason, reason, label);
    if (typeof says === "string") assert.equal(mapped.message, says, label);
    else assert.match(mapped.message, says, label);
    assert.ok(mapped.message.startsWith(`Cannot ${context.action}: `), label);
    assert.doesNotMatch(mapped.message, /\n/, `${label}: one line`);
    assert.doesNotMatch(mapped.message, RAW, `${label}: no raw text`);
    assert.match(mapped.message, /\(.*\)$/, `${label}: ends with what to check`);
    assert.equal(/\bbug\b/.test(mapped.message), reason === "bug", `${label}: "bug" only for bugs`);
    assert.equal(mapped.cause, raw, `${label}: the original is kept as cause`);
    assert.equal(mapped.name, "TransportError");
  }
});

Deno.test("bugs are not dressed up as network failures; a TransportError passes through", () => {
  for (const bug of [new TypeError("x is not a function"), new RangeError("bad length")]) {
    assert.equal(transportError(bug, client), bug);
  }
  const already = new TransportError("Cannot read from alice: it sent too much", {
    reason: "overrun",
  });
  assert.equal(transportError(already, client), already);
  // A thrown non-Error still becomes a sentence.
  const odd = transportError("weird", client);
  assert.ok(odd instanceof TransportError);
  assert.equal(odd.reason, "network");
});
