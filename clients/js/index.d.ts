import type { Client, ClientOptions as GraphQLWSClientOptions } from 'graphql-ws';
export { CloseCode } from 'graphql-ws';

/** Options of {@link createClient}: graphql-ws's, plus `token`. */
export interface ClientOptions extends GraphQLWSClientOptions {
  /**
   * A JWT sent as the connection_init payload `{token}`. A `connectionParams`
   * of `{authToken}` (Apollo Client's documented form) or `{token}` works too;
   * a function may return a fresh one on every connection.
   */
  token?: string;
}

/**
 * A graphql-ws `Client` for a FraiseQL node: every subscription resumes from
 * the last `extensions.cursor` it received when the connection comes back, and
 * the client keeps retrying, with backoff, while the node refuses connections.
 * Usable as is under Apollo Client's `GraphQLWsLink` and urql's
 * `subscriptionExchange`.
 */
export function createClient(options: ClientOptions): Client;

/** The default backoff: 250 ms doubling to 10 s, with jitter. */
export function defaultRetryWait(retries: number): Promise<void>;
