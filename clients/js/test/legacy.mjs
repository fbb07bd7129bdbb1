// The legacy subscriptions-transport-ws client (subprotocol graphql-ws),
// for the integration suite: one subscription with a variable and a
// fragment, each result printed as a JSON line. It has no resume of its own.
import WebSocket from 'ws';
import pkg from 'subscriptions-transport-ws';

const { SubscriptionClient } = pkg;
const client = new SubscriptionClient(process.env.FRAISEQL_URL, {
  reconnect: false,
  connectionParams: { authToken: process.env.FRAISEQL_TOKEN },
}, WebSocket);
const query = `subscription Room($room: ID!) { messageAdded(room: $room) { ...Msg } }
fragment Msg on Message { id text author { name } }`;
client.request({ query, variables: { room: process.env.ROOM || 'js' } }).subscribe({
  next: (r) => process.stdout.write(JSON.stringify({ event: 'data', result: r }) + '\n'),
  error: (e) => process.stdout.write(JSON.stringify({ event: 'error', error: String(e?.message || JSON.stringify(e)) }) + '\n'),
});
process.on('SIGTERM', () => process.exit(0));
