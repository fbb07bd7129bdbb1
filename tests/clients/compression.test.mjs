// permessage-deflate with the `ws` package, which offers it by default (as
// browsers do): graphql-ws over a node with ws.compression on negotiates
// it, and the whole scenario (receive, errors, node kill, resume) runs
// over compressed messages (compression_threshold 1: every `next` is
// compressed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startEnv, runScenario, token, codesOf } from './harness.mjs';

for (const mode of ['no_context_takeover', 'context_takeover']) {
  test(`graphql-ws with permessage-deflate (ws.compression: ${mode})`, async (t) => {
    const env = await startEnv({ config: `ws:\n  compression: ${mode}\n  compression_threshold: 1\n` });
    const negotiated = [];
    class Recording extends WebSocket {
      constructor(...args) {
        super(...args);
        this.once('open', () => negotiated.push(this.extensions));
      }
    }
    const client = createClient({
      url: env.url,
      webSocketImpl: Recording,
      connectionParams: { token: token() },
      retryAttempts: 1000,
      shouldRetry: () => true,
      retryWait: () => new Promise((r) => setTimeout(r, 200)),
    });
    try {
      await runScenario(t, env, {
        subscribe(query, variables, sink) {
          const payload = { query, variables, extensions: {} };
          return client.subscribe(payload, {
            next: (r) => {
              if (r.extensions?.cursor) payload.extensions.cursor = r.extensions.cursor;
              sink.next(r.data);
            },
            error: (e) => sink.error(codesOf(e)),
            complete: () => sink.complete(),
          });
        },
      });
      assert.ok(negotiated.length > 0, 'the client never connected');
      for (const ext of negotiated) assert.match(ext, /permessage-deflate/);
    } finally {
      await client.dispose();
      await env.close();
    }
  });
}
