// Drives one subscription through each way of using the client, for the
// integration suite (tests/integration/jsclient_test.go): the client
// directly, Apollo Client with GraphQLWsLink, and urql with
// subscriptionExchange. Each prints one JSON line per happening on stdout:
//
//   {"client":"apollo","event":"data","id":"3"}
//   {"client":"urql","event":"connection-error","message":"connect ECONNREFUSED …"}
//   {"client":"direct","event":"closed","code":1001}
//   {"client":"direct","event":"error","codes":["GRAPHQL_VALIDATION_FAILED"]}
//
// Environment: FRAISEQL_URL, FRAISEQL_TOKEN (sent as Apollo's
// connectionParams {authToken}), ROOM.
import WebSocket from 'ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { Client as UrqlClient, subscriptionExchange } from '@urql/core';
import { createClient } from '../index.js';

const url = process.env.FRAISEQL_URL;
const authToken = process.env.FRAISEQL_TOKEN;
const room = process.env.ROOM || 'js';
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const query = `subscription Room($room: ID!) { messageAdded(room: $room) { ...Msg } }
fragment Msg on Message { id text author { name } }`;

function wsClient(name) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authToken },
    retryWait: async () => new Promise((r) => setTimeout(r, 200)),
    on: {
      connected: () => print({ client: name, event: 'connected' }),
      closed: (e) => { if (e && typeof e.code === 'number') print({ client: name, event: 'closed', code: e.code }); },
      error: (e) => print({ client: name, event: 'connection-error', message: String(e?.message || e?.error?.message || e?.type || e) }),
    },
  });
}

const onError = (name) => (err) => {
  const errs = Array.isArray(err) ? err : err?.graphQLErrors || [err];
  print({ client: name, event: 'error', codes: errs.map((e) => e?.extensions?.code || e?.code || String(e?.message || e)) });
};

// 1. The client directly (what graphql-ws users write).
const direct = wsClient('direct');
direct.subscribe({ query, variables: { room } }, {
  next: (r) => print({ client: 'direct', event: 'data', id: r.data?.messageAdded?.id, text: r.data?.messageAdded?.text }),
  error: onError('direct'),
  complete: () => print({ client: 'direct', event: 'complete' }),
});

// 2. Apollo Client with GraphQLWsLink, unchanged.
const apollo = new ApolloClient({ link: new GraphQLWsLink(wsClient('apollo')), cache: new InMemoryCache() });
apollo.subscribe({ query: gql(query), variables: { room } }).subscribe({
  next: (r) => print({ client: 'apollo', event: 'data', id: r.data?.messageAdded?.id, text: r.data?.messageAdded?.text }),
  error: onError('apollo'),
  complete: () => print({ client: 'apollo', event: 'complete' }),
});

// 3. urql with subscriptionExchange, as urql's documentation shows it.
const urqlWS = wsClient('urql');
const urql = new UrqlClient({
  url: 'http://127.0.0.1/unused', // queries and mutations: none here
  exchanges: [subscriptionExchange({
    forwardSubscription: (request) => ({
      subscribe: (sink) => ({ unsubscribe: urqlWS.subscribe({ ...request, query: request.query || '' }, sink) }),
    }),
  })],
});
urql.subscription(query, { room }).subscribe((r) => {
  if (r.error) onError('urql')(r.error);
  else print({ client: 'urql', event: 'data', id: r.data?.messageAdded?.id, text: r.data?.messageAdded?.text });
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
