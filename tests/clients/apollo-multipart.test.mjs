// Apollo Client with its default HTTP link and no WebSocket link at all:
// subscriptions go as multipart HTTP requests (Accept: multipart/mixed;
// subscriptionSpec=1.0), the token in the Authorization header, and the
// resume link of docs/clients.md resubscribes from extensions.cursor when
// a stream ends without the server ending the subscription.
import { test } from 'node:test';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, Observable, gql } from '@apollo/client/core/index.js';
import { PROTOCOL_ERRORS_SYMBOL } from '@apollo/client/errors/index.js';
import { getMainDefinition } from '@apollo/client/utilities/index.js';
import { startEnv, runScenario, token, apolloAdapter } from './harness.mjs';

// resumeLink is the link docs/clients.md shows ("Apollo Client over
// multipart HTTP"): it sends each subscription's extensions, keeps the
// cursor of its last result, and subscribes again from it when the stream
// ends without an error of the subscription (the node went away), with a
// transport error other than FORBIDDEN (the node shut down), or with a
// network error or a 503/429 (no node reachable yet). Errors of the
// subscription, and other refusals, go to the application.
const resumeLink = (retryMs = 200) => new ApolloLink((operation, forward) => {
  const def = getMainDefinition(operation.query);
  if (def.kind !== 'OperationDefinition' || def.operation !== 'subscription') return forward(operation);
  operation.setContext(({ http }) => ({ http: { ...http, includeExtensions: true } }));
  return new Observable((observer) => {
    let cursor = operation.extensions?.cursor;
    let sub = null;
    let timer = null;
    let closed = false;
    const again = () => { if (!closed) timer = setTimeout(start, retryMs); };
    function start() {
      if (cursor) operation.extensions = { ...operation.extensions, cursor };
      let ended = false; // the server ended the subscription: do not resume
      sub = forward(operation).subscribe({
        next: (result) => {
          const transport = result.extensions?.[PROTOCOL_ERRORS_SYMBOL];
          if (transport && !transport.some((e) => e.extensions?.code === 'FORBIDDEN')) return; // resume at the end
          if (result.extensions?.cursor) cursor = result.extensions.cursor;
          if (result.errors?.length || transport) ended = true;
          observer.next(result);
        },
        error: (err) => (err.statusCode === undefined || err.statusCode === 503 || err.statusCode === 429 ? again() : observer.error(err)),
        complete: () => (ended ? observer.complete() : again()),
      });
    }
    start();
    return () => {
      closed = true;
      clearTimeout(timer);
      sub?.unsubscribe();
    };
  });
});

test('Apollo Client HttpLink (multipart subscriptions)', async (t) => {
  const env = await startEnv();
  const apollo = new ApolloClient({
    link: ApolloLink.from([
      resumeLink(),
      new HttpLink({ uri: `http://${env.addr}/graphql`, headers: { authorization: `Bearer ${token()}` } }),
    ]),
    cache: new InMemoryCache(),
    // Two identical subscriptions are two streams: the scenario completes one.
    queryDeduplication: false,
  });
  const open = new Set(); // the scenario's subscriptions, ended before the node stops
  try {
    await runScenario(t, env, apolloAdapter(apollo, gql, open), { typename: true });

    await t.test('a refusal before the stream is a ServerError with the coded body', async () => {
      const bad = new ApolloClient({
        link: new HttpLink({ uri: `http://${env.addr}/graphql`, headers: { authorization: 'Bearer not-a-token' } }),
        cache: new InMemoryCache(),
      });
      const err = await new Promise((resolve) => {
        bad.subscribe({ query: gql('subscription { messageAdded(room: "x") { id } }') }).subscribe({
          next: () => resolve(new Error('data without a token')),
          error: resolve,
        });
      });
      bad.stop();
      const { statusCode, result } = err.networkError ?? err; // a ServerError, wrapped in an ApolloError or not
      if (statusCode !== 403 || result?.errors?.[0]?.extensions?.code !== 'FORBIDDEN') {
        throw new Error(`got ${err}, status ${statusCode}, body ${JSON.stringify(result)}; want 403 FORBIDDEN`);
      }
    });
  } finally {
    for (const sub of open) sub.unsubscribe();
    apollo.stop();
    await env.close();
  }
});
