// Subscribe to a FraiseQL node with the graphql-ws client and print every
// result as one JSON line.
//
//   node subscribe.mjs 'subscription { messageAdded(room: "r1") { id text } }'
//
// Environment: FRAISEQL_URL (default ws://127.0.0.1:8080/graphql),
// FRAISEQL_TOKEN (sent as connection_init payload {token}), COUNT (exit after
// COUNT results; default: run until interrupted).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const query = process.argv[2];
if (!query) {
  console.error('usage: node subscribe.mjs \'subscription { ... }\' [variables-json]');
  process.exit(2);
}
const variables = process.argv[3] ? JSON.parse(process.argv[3]) : undefined;
const url = process.env.FRAISEQL_URL || 'ws://127.0.0.1:8080/graphql';
const count = Number(process.env.COUNT || 0);
const token = process.env.FRAISEQL_TOKEN;

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { token } : undefined,
  retryAttempts: 0,
  on: { connected: () => console.error(`connected to ${url}`) },
});

let seen = 0;
const dispose = client.subscribe(
  { query, variables },
  {
    next: (result) => {
      console.log(JSON.stringify(result));
      seen++;
      if (count > 0 && seen >= count) {
        dispose();
        client.dispose();
      }
    },
    error: (err) => {
      console.error('error:', JSON.stringify(err, Object.getOwnPropertyNames(err)));
      process.exitCode = 1;
      client.dispose();
    },
    complete: () => client.dispose(),
  },
);
process.on('SIGINT', () => { dispose(); client.dispose(); });
