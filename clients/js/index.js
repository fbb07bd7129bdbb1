// @fraiseql/subscriptions-client: a graphql-ws client for FraiseQL
// Subscriptions that resumes every subscription from its last cursor when
// the connection comes back, and keeps retrying while the node is down.
import { createClient as createGraphQLWSClient, CloseCode } from 'graphql-ws';

/**
 * Close codes after which a retry cannot succeed until something changes.
 * 4403 (forbidden) is among them unless connectionParams is a function, which
 * may return a fresh token on the next attempt.
 */
const FATAL = new Set([
  CloseCode.BadRequest,
  CloseCode.Unauthorized,
  CloseCode.SubprotocolNotAcceptable,
  CloseCode.SubscriberAlreadyExists,
  CloseCode.TooManyInitialisationRequests,
  CloseCode.InternalServerError,
  1009, // a message too big: sending it again will not help
]);

const isCloseEvent = (e) => e != null && typeof e === 'object' && typeof e.code === 'number';

/**
 * The resume verdict a result carries, or null: the node sends one `next`
 * with `{data: null, extensions: {resume: {verdict, after?, until?}}}`
 * before the replayed events of a subscribe that asked for it
 * (`extensions.resume: "verdict"`; docs/protocol.md, "Resume verdict").
 */
function verdictOf(result) {
  const v = result?.extensions?.resume;
  if (result?.data != null || result?.errors || v == null || typeof v !== 'object' || typeof v.verdict !== 'string') return null;
  return { ...v };
}

/** Exponential backoff with jitter: 250 ms doubling to 10 s. */
export async function defaultRetryWait(retries) {
  const ms = Math.min(10_000, 250 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random() / 2);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Normalises connection parameters: `token` and Apollo's `authToken` are
 * both sent, so that every node version finds the token.
 */
function withToken(params, token) {
  const p = params && typeof params === 'object' ? { ...params } : {};
  if (token && !p.token) p.token = token;
  if (p.authToken && !p.token) p.token = p.authToken;
  return Object.keys(p).length > 0 ? p : undefined;
}

/**
 * Creates a graphql-ws client for a FraiseQL node. It is a graphql-ws
 * `Client` (subscribe, iterate, on, dispose, terminate), so it can be given
 * as is to Apollo Client's `GraphQLWsLink` or used in urql's
 * `subscriptionExchange`. What it adds:
 *
 * - every subscription remembers the `extensions.cursor` of the last result
 *   it received, and is resubscribed from that cursor after a reconnection:
 *   no event is lost or delivered twice across a node restart or a move to
 *   another node;
 * - it retries when the connection is refused or fails, not only when it
 *   closes (graphql-ws's default gives up while the node is still down),
 *   forever by default, with backoff;
 * - `token` (or Apollo's `connectionParams: {authToken}`) is sent as the
 *   connection_init payload `{token}`;
 * - every subscribe asks for a resume verdict (`extensions.resume:
 *   "verdict"`): a resume whose cursor is older than the stream's retention
 *   goes on live from the oldest event stored instead of failing with
 *   CURSOR_EXPIRED, and `onResume({verdict, after, until}, payload)` says
 *   whether the history was complete (`recovered`) or events were lost
 *   (`gap`). The verdict itself never reaches the sink, so Apollo Client
 *   and urql see only results. `resumeVerdict: false` turns this off.
 *
 * Every graphql-ws option may be given and wins over these defaults.
 *
 * @param {import('./index.d.ts').ClientOptions} options
 * @returns {import('graphql-ws').Client}
 */
export function createClient(options) {
  const { token, connectionParams, onResume, resumeVerdict = true, ...rest } = options;
  const params = typeof connectionParams === 'function'
    ? async () => withToken(await connectionParams(), token)
    : withToken(connectionParams, token);
  const refreshable = typeof connectionParams === 'function';
  const client = createGraphQLWSClient({
    retryAttempts: Infinity,
    retryWait: defaultRetryWait,
    shouldRetry: (e) => !(isCloseEvent(e) && (FATAL.has(e.code) || (e.code === CloseCode.Forbidden && !refreshable))),
    ...rest,
    connectionParams: params,
  });
  // graphql-ws sends the same payload object on every (re)subscription, so
  // keeping the last cursor in it is what resumes.
  const subscribe = (payload, sink) => {
    const request = { ...payload, extensions: { ...(payload.extensions || {}) } };
    if (resumeVerdict && request.extensions.resume === undefined) request.extensions.resume = 'verdict';
    return client.subscribe(request, {
      next(result) {
        const verdict = resumeVerdict ? verdictOf(result) : null;
        if (verdict) {
          // After a gap, resuming again from the last event removed says
          // what is lost since, not the same gap once more.
          if (verdict.verdict === 'gap' && typeof verdict.until === 'string' && verdict.until !== '') {
            request.extensions = { ...request.extensions, cursor: verdict.until };
          }
          if (onResume) onResume(verdict, payload);
          return;
        }
        const cursor = result?.extensions?.cursor;
        if (typeof cursor === 'string' && cursor !== '') {
          request.extensions = { ...request.extensions, cursor };
        }
        sink.next(result);
      },
      error: (err) => sink.error(err),
      complete: () => sink.complete(),
    });
  };
  return {
    ...client,
    subscribe,
    iterate(payload) {
      // Built on this subscribe, so iteration resumes too.
      const pending = [];
      let wake = null;
      let finished = false;
      let failure = null;
      const signal = () => { if (wake) { wake(); wake = null; } };
      const dispose = subscribe(payload, {
        next: (v) => { pending.push(v); signal(); },
        error: (e) => { failure = e; finished = true; signal(); },
        complete: () => { finished = true; signal(); },
      });
      return {
        [Symbol.asyncIterator]() { return this; },
        async next() {
          for (;;) {
            if (pending.length > 0) return { value: pending.shift(), done: false };
            if (failure) throw failure;
            if (finished) return { value: undefined, done: true };
            await new Promise((r) => { wake = r; });
          }
        },
        async return() { dispose(); finished = true; return { value: undefined, done: true }; },
        async throw(e) { dispose(); finished = true; throw e; },
      };
    },
  };
}

export { CloseCode };
