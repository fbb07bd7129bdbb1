// Subscribe to a FraiseQL node with the graphql-ws client, print every
// result as one JSON line on stdout, and say on stderr what happens to the
// connection: errors with their codes, close codes with their reasons,
// reconnections. When the connection drops (the node restarts, or shuts
// down with 1001), it reconnects and resumes from the last cursor received,
// so no event is lost or repeated.
//
//   node subscribe.mjs [flags] 'subscription { messageAdded(room: "r1") { id text } }' [variables-json]
//
// Flags (each also an environment variable):
//   --url URL        FRAISEQL_URL     default ws://127.0.0.1:8080/graphql
//   --token JWT      FRAISEQL_TOKEN   sent as the connection_init payload {token}
//   --cursor CURSOR  FRAISEQL_CURSOR  start after this cursor (an earlier result's extensions.cursor)
//   --count N        COUNT            exit after N results (default: until interrupted)
//   --no-resume                       exit when the connection drops instead of resuming
//
// Exit status: 0 after --count results or a completed subscription, 1 on
// an error (printed with its code), 2 on bad usage.
import { createClient, CloseCode } from 'graphql-ws';
import WebSocket from 'ws';
import { parseArgs } from 'node:util';

const usage = `usage: node subscribe.mjs [--url URL] [--token JWT] [--cursor CURSOR] [--count N] [--no-resume] 'subscription { ... }' [variables-json]`;
let opts;
try {
  opts = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: process.env.FRAISEQL_URL || 'ws://127.0.0.1:8080/graphql' },
      token: { type: 'string', default: process.env.FRAISEQL_TOKEN || '' },
      cursor: { type: 'string', default: process.env.FRAISEQL_CURSOR || '' },
      count: { type: 'string', default: process.env.COUNT || '0' },
      'no-resume': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  console.error(`${err.message}\n${usage}`);
  process.exit(2);
}
const { values: flags, positionals } = opts;
if (flags.help || positionals.length < 1 || positionals.length > 2) {
  console.error(usage);
  process.exit(flags.help ? 0 : 2);
}
const query = positionals[0];
let variables;
try {
  variables = positionals[1] ? JSON.parse(positionals[1]) : undefined;
} catch (err) {
  console.error(`variables are not JSON: ${err.message}`);
  process.exit(2);
}
const count = Number(flags.count);
if (!Number.isInteger(count) || count < 0) {
  console.error(`--count ${flags.count}: want a whole number`);
  process.exit(2);
}

// Close codes after which reconnecting cannot help: the request or the
// credentials must change first.
const fatalCloses = new Set([
  CloseCode.BadRequest, CloseCode.Unauthorized, CloseCode.Forbidden,
  CloseCode.SubscriberAlreadyExists, CloseCode.TooManyInitialisationRequests,
  CloseCode.InternalServerError, 1009,
]);

// The subscribe payload. graphql-ws sends this same object again on every
// reconnection, so updating its cursor is what makes the retry resume.
const payload = { query, variables, extensions: flags.cursor ? { cursor: flags.cursor } : undefined };

const describeClose = (e) => `closed ${e.code}${e.reason ? ` (${e.reason})` : ''}`;

const client = createClient({
  url: flags.url,
  webSocketImpl: WebSocket,
  connectionParams: flags.token ? { token: flags.token } : undefined,
  lazy: true,
  retryAttempts: flags['no-resume'] ? 0 : Infinity,
  // graphql-ws retries only after a close by default; a node that is
  // restarting refuses the connection, so retry on that as well.
  shouldRetry: (e) => !(e && typeof e.code === 'number' && fatalCloses.has(e.code)),
  retryWait: async (retries) => {
    const ms = Math.min(10_000, 250 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random() / 2);
    console.error(`reconnecting in ${Math.round(ms)} ms${payload.extensions ? ', resuming after the last cursor' : ''}`);
    await new Promise((r) => setTimeout(r, ms));
  },
  on: {
    connected: () => console.error(`connected to ${flags.url}`),
    closed: (e) => { if (e && typeof e.code === 'number') console.error(describeClose(e)); },
    error: (e) => console.error(`connection error: ${e?.message || e?.error?.message || e?.type || e}`),
  },
});

let seen = 0;
const stop = client.subscribe(payload, {
  next: (result) => {
    const cursor = result.extensions?.cursor;
    if (cursor) payload.extensions = { cursor };
    console.log(JSON.stringify(result));
    if (count > 0 && ++seen >= count) {
      stop();
      client.dispose();
    }
  },
  error: (err) => {
    printError(err);
    process.exitCode = 1;
    client.dispose();
  },
  complete: () => client.dispose(),
});

// printError says what ended the subscription: GraphQL errors with their
// codes, a close with its code and reason, or a connection failure.
function printError(err) {
  if (Array.isArray(err)) {
    for (const e of err) {
      const code = e.extensions?.code ? `${e.extensions.code}: ` : '';
      console.error(`error: ${code}${e.message}`);
      if (e.extensions?.code === 'CURSOR_EXPIRED' || e.extensions?.code === 'BAD_CURSOR') {
        console.error('hint: subscribe again without --cursor (the events before it are gone or it is not this tenant\'s)');
      }
    }
  } else if (err && typeof err.code === 'number') {
    console.error(`error: ${describeClose(err)}`);
  } else {
    console.error(`error: ${err?.message || err}`);
  }
}

process.on('SIGINT', () => { stop(); client.dispose(); });
