import type { Client, ClientOptions as GraphQLWSClientOptions, SubscribePayload } from 'graphql-ws';
export { CloseCode } from 'graphql-ws';

/**
 * How a resume went (docs/protocol.md, "Resume verdict"): `recovered`, every
 * event after the cursor was replayed; `gap`, the stream's retention had
 * removed the events after `after` up to and including `until` (those of
 * the subscription, if there were any, are lost), and the subscription went
 * on with the events after `until`, then live. Both are opaque cursors.
 */
export interface ResumeVerdict {
  verdict: 'recovered' | 'gap';
  /** gap: the cursor the client resumed after. */
  after?: string;
  /** gap: the last position removed; the replay went on after it. */
  until?: string;
}

/** Options of {@link createClient}: graphql-ws's, plus `token`, `onResume` and `resumeVerdict`. */
export interface ClientOptions extends GraphQLWSClientOptions {
  /**
   * A JWT sent as the connection_init payload `{token}`. A `connectionParams`
   * of `{authToken}` (Apollo Client's documented form) or `{token}` works too;
   * a function may return a fresh one on every connection.
   */
  token?: string;
  /**
   * Called when a subscription resumed from a cursor (after a reconnection,
   * or a first subscribe with `extensions.cursor`), before its replayed
   * events, with the node's verdict and the subscription's payload as it was
   * given to `subscribe`. Nodes without resume verdicts never call it.
   */
  onResume?: (verdict: ResumeVerdict, payload: SubscribePayload) => void;
  /**
   * Ask for resume verdicts (default true). With false, a cursor older than
   * the retention fails the subscription with CURSOR_EXPIRED, as before.
   */
  resumeVerdict?: boolean;
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
