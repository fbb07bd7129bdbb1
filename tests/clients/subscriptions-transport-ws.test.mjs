// subscriptions-transport-ws, the legacy client (subprotocol graphql-ws),
// resuming by hand: it sends the operation's options object again as the
// start payload after it reconnects, so keeping the last cursor in its
// extensions resumes.
import { test } from 'node:test';
import WebSocket from 'ws';
import pkg from 'subscriptions-transport-ws';
import { startEnv, runScenario, token, codesOf } from './harness.mjs';

const { SubscriptionClient } = pkg;

test('subscriptions-transport-ws', async (t) => {
  const env = await startEnv();
  const client = new SubscriptionClient(env.url, {
    reconnect: true,
    minTimeout: 200,
    connectionParams: { authToken: token() },
  }, WebSocket);
  client.maxConnectTimeGenerator.duration = () => 200; // retry every 200 ms, not up to 30 s
  try {
    await runScenario(t, env, {
      subscribe(query, variables, sink) {
        const request = { query, variables, extensions: {} };
        const sub = client.request(request).subscribe({
          next: (r) => {
            if (r.extensions?.cursor) request.extensions.cursor = r.extensions.cursor;
            if (r.errors?.length) sink.error(codesOf(r.errors));
            else sink.next(r.data);
          },
          error: (e) => sink.error(codesOf(e)),
          complete: () => sink.complete(),
        });
        return () => sub.unsubscribe();
      },
    });
  } finally {
    client.close();
    await env.close();
  }
});
