// Apollo Client with GraphQLWsLink and urql with subscriptionExchange, each
// on @fraiseql/subscriptions-client (clients/js) as their documentation
// shows for graphql-ws: the token in Apollo's connectionParams {authToken};
// resume is the client's.
import { test } from 'node:test';
import WebSocket from 'ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { Client as UrqlClient, subscriptionExchange } from '@urql/core';
import { createClient } from '@fraiseql/subscriptions-client';
import { startEnv, runScenario, token, codesOf, apolloAdapter } from './harness.mjs';

const wsClient = (env) => createClient({
  url: env.url,
  webSocketImpl: WebSocket,
  connectionParams: { authToken: token() },
  retryWait: () => new Promise((r) => setTimeout(r, 200)),
});

// GraphQLWsLink's error handler reads the global WebSocket (for
// WebSocket.CLOSED), which Node.js has only from version 22: without it,
// the first GraphQL error throws inside graphql-ws, which closes the
// connection (4004) instead of delivering the error.
globalThis.WebSocket ??= WebSocket;

test('Apollo Client GraphQLWsLink', async (t) => {
  const env = await startEnv();
  const ws = wsClient(env);
  const apollo = new ApolloClient({ link: new GraphQLWsLink(ws), cache: new InMemoryCache() });
  try {
    await runScenario(t, env, apolloAdapter(apollo, gql), { typename: true });
  } finally {
    apollo.stop();
    await ws.dispose();
    await env.close();
  }
});

test('urql subscriptionExchange', async (t) => {
  const env = await startEnv();
  const ws = wsClient(env);
  const urql = new UrqlClient({
    url: 'http://127.0.0.1/unused', // queries and mutations: none here
    exchanges: [subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query || '' }, sink) }),
      }),
    })],
  });
  try {
    await runScenario(t, env, {
      subscribe(query, variables, sink) {
        const sub = urql.subscription(query, variables).subscribe((r) => {
          if (r.error) sink.error(codesOf(r.error));
          else sink.next(r.data);
        });
        return () => sub.unsubscribe();
      },
    });
  } finally {
    await ws.dispose();
    await env.close();
  }
});
