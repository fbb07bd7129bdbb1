// The graphql-sse client (distinct connections mode), for the integration
// suite: one subscription, each result printed as a JSON line, then
// {"event":"complete"} or {"event":"error"}. CURSOR resumes after a
// cursor (extensions.cursor); QUERY replaces the subscription.
import { createClient } from 'graphql-sse';

const headers = {};
if (process.env.FRAISEQL_TOKEN) headers.Authorization = `Bearer ${process.env.FRAISEQL_TOKEN}`;
const client = createClient({ url: process.env.SSE_URL, headers, retryAttempts: 0 });
const request = {
  query: process.env.QUERY || 'subscription Room($room: ID!) { messageAdded(room: $room) { id text } }',
  variables: { room: process.env.ROOM || 'sse' },
};
if (process.env.CURSOR) request.extensions = { cursor: process.env.CURSOR };
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
try {
  for await (const result of client.iterate(request)) out({ event: 'data', result });
  out({ event: 'complete' });
} catch (e) {
  out({ event: 'error', error: String(e?.message || JSON.stringify(e)) });
}
client.dispose();
process.on('SIGTERM', () => process.exit(0));
