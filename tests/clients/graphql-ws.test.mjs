// graphql-ws (the reference client of graphql-transport-ws), used as its
// documentation shows, resuming by hand: the subscribe payload keeps the
// last extensions.cursor, and graphql-ws sends that payload again after it
// reconnects. And @fraiseql/subscriptions-client (clients/js), which does
// the same by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { createClient as createResumingClient } from '@fraiseql/subscriptions-client';
import { startEnv, runScenario, token, codesOf } from './harness.mjs';

function adapter(client, byHand) {
  return {
    subscribe(query, variables, sink) {
      const payload = { query, variables, extensions: {} };
      return client.subscribe(payload, {
        next: (r) => {
          if (byHand && r.extensions?.cursor) payload.extensions.cursor = r.extensions.cursor;
          sink.next(r.data);
        },
        error: (e) => sink.error(codesOf(e)),
        complete: () => sink.complete(),
      });
    },
  };
}

test('graphql-ws', async (t) => {
  const env = await startEnv();
  const client = createClient({
    url: env.url,
    webSocketImpl: WebSocket,
    connectionParams: { token: token() },
    retryAttempts: 1000,
    shouldRetry: () => true, // also while the node refuses connections
    retryWait: () => new Promise((r) => setTimeout(r, 200)),
  });
  try {
    await runScenario(t, env, adapter(client, true));
  } finally {
    await client.dispose();
    await env.close();
  }
});

test('@fraiseql/subscriptions-client', async (t) => {
  const env = await startEnv();
  const verdicts = [];
  const client = createResumingClient({
    url: env.url,
    webSocketImpl: WebSocket,
    token: token(),
    retryWait: () => new Promise((r) => setTimeout(r, 200)),
    onResume: (v) => verdicts.push(v),
  });
  try {
    await runScenario(t, env, adapter(client, false));
    // The resume after the node kill lost nothing; the verdict went to
    // onResume, not to the sink (runScenario would have seen a null).
    await t.test('resume verdict', () => {
      assert.ok(verdicts.length > 0, 'no verdict');
      assert.deepEqual(verdicts.filter((v) => v.verdict !== 'recovered'), []);
    });
  } finally {
    await client.dispose();
    await env.close();
  }
});
