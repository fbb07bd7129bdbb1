// The graphql-sse client, for the integration suite: one subscription,
// each result printed as a JSON line, then {"event":"complete"} or
// {"event":"error"} (with the refusal's status and body when the server
// answered one). CURSOR resumes after a cursor (extensions.cursor); QUERY
// replaces the subscription; SINGLE=1 uses single connection mode
// (reservation, one stream, POST per operation); TAKE=n stops after n
// results (single connection mode: a DELETE for the operation).
import { createClient } from 'graphql-sse';

const headers = {};
if (process.env.FRAISEQL_TOKEN) headers.Authorization = `Bearer ${process.env.FRAISEQL_TOKEN}`;
const single = process.env.SINGLE === '1';
// A refusal's body is read before the client aborts the request it came
// in (single connection mode aborts a refused POST at once).
const fetchFn = async (input, init) => {
  const res = await fetch(input, init);
  if (!res.ok) res.errorBody = await res.clone().text().catch(() => '');
  return res;
};
const client = createClient({ url: process.env.SSE_URL, headers, retryAttempts: 0, singleConnection: single, fetchFn });
const request = {
  query: process.env.QUERY || 'subscription Room($room: ID!) { messageAdded(room: $room) { id text } }',
  variables: { room: process.env.ROOM || 'sse' },
};
if (process.env.CURSOR) request.extensions = { cursor: process.env.CURSOR };
const take = Number(process.env.TAKE || 0);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
try {
  let n = 0;
  for await (const result of client.iterate(request)) {
    out({ event: 'data', result });
    if (++n === take) break;
  }
  out({ event: 'complete' });
  // Let the operation's DELETE go out before dispose aborts it.
  if (single && take) await new Promise((resolve) => setTimeout(resolve, 500));
} catch (e) {
  const res = e?.response;
  out({
    event: 'error',
    error: String(e?.message || JSON.stringify(e)),
    status: res?.status,
    body: res?.errorBody,
  });
}
client.dispose();
process.on('SIGTERM', () => process.exit(0));
