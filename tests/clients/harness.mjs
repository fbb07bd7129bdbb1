// The client compatibility suite's harness: a real fraiseql-node (built
// once per test file from ./cmd/fraiseql-node) on a random loopback port,
// with JWT authentication, in front of a NATS server with JetStream (built
// from the nats-server module go.mod pins) on another random port, each in
// a temporary directory. The node can be killed (SIGKILL) and started again
// on the same address while events go on being published, and
// runScenario checks what every client must do against it.
import { spawn, execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';

const run = promisify(execFile);
export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const secret = 'client-compat-secret-0123456789abcdef';
export const tenant = 'acme';

/** A JWT (HS256) the node accepts: tenant acme, audience fraiseql. */
export function token(sub = 'ann') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ tenant, sub, aud: 'fraiseql', exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** A port free on 127.0.0.1 (listened on, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Polls f (async, truthy when done) every 50 ms for at most ms. */
export async function waitFor(what, ms, f) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function start(bin, args, name, log) {
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d) => { log.push(`${name}: ${d}`); if (log.length > 400) log.shift(); };
  p.stdout.on('data', keep);
  p.stderr.on('data', keep);
  return p;
}

// stop signals p and waits for it to exit, killing it after 10 s.
function stop(p, signal) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), 10000);
    p.once('exit', () => { clearTimeout(timer); resolve(); });
    p.kill(signal);
  });
}

/**
 * Builds the node and NATS, and starts them. options.config is YAML added to
 * the node's configuration file. Returns the environment; close() stops
 * everything and removes the directory.
 */
export async function startEnv(options = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'fraiseql-clients-'));
  await run('go', ['build', '-o', dir + '/', './cmd/fraiseql-node', 'github.com/nats-io/nats-server/v2'],
    { cwd: repo, maxBuffer: 1 << 24 });
  const log = [];
  const natsPort = await freePort();
  const natsURL = `nats://127.0.0.1:${natsPort}`;
  const nats = start(join(dir, 'nats-server'),
    ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'jetstream')], 'nats', log);
  await writeFile(join(dir, 'secret'), secret);
  await writeFile(join(dir, 'node.yaml'),
    `auth:\n  hs256_secret_file: ${join(dir, 'secret')}\n  audience: fraiseql\n${options.config || ''}`);
  const port = await freePort();
  const opsPort = await freePort();
  const env = {
    dir, log, natsURL,
    addr: `127.0.0.1:${port}`,
    url: `ws://127.0.0.1:${port}/graphql`,
    node: null,
    async startNode() {
      this.node = start(join(dir, 'fraiseql-node'), ['serve', '--config', join(dir, 'node.yaml'),
        '--listen', this.addr, '--ops-listen', `127.0.0.1:${opsPort}`, '--nats-url', natsURL,
        '--data-dir', join(dir, 'data'), '--log-level', 'warn'], 'node', log);
      await waitFor('the node to serve /healthz', 30000, async () => {
        if (this.node.exitCode !== null) throw new Error(`the node exited ${this.node.exitCode}:\n${log.join('')}`);
        try { return (await fetch(`http://${this.addr}/healthz`)).ok; } catch { return false; }
      });
    },
    /** SIGKILL: no 1001, no goodbye; the address refuses connections. */
    killNode() { return stop(this.node, 'SIGKILL'); },
    /** One event through the node's publish command (straight to NATS). */
    async publish(topic, body) {
      await run(join(dir, 'fraiseql-node'), ['publish', '--nats-url', natsURL, '--tenant', tenant, topic, JSON.stringify(body)]);
    },
    /** The node's fraiseql_subscriptions gauge (ops listener). */
    async subscriptions() {
      const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
      const m = /^fraiseql_subscriptions (\d+)$/m.exec(text);
      return m ? Number(m[1]) : NaN;
    },
    async close() {
      await stop(this.node, 'SIGINT'); // SIGTERM would drain for shutdown.drain_delay
      await stop(nats, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor('NATS to accept connections', 30000, async () => {
      if (nats.exitCode !== null) throw new Error(`nats-server exited:\n${log.join('')}`);
      return new Promise((resolve) => {
        const c = connect(natsPort, '127.0.0.1', () => { c.destroy(); resolve(true); });
        c.on('error', () => resolve(false));
      });
    });
    await env.startNode();
  } catch (e) {
    await env.close();
    throw e;
  }
  return env;
}

/** The subscription every client sends: a variable and a fragment. */
export const query = `subscription Room($room: ID!) { messageAdded(room: $room) { ...Msg } }
fragment Msg on Message { id text author { name } }`;

/** A query the schema refuses: the server answers with a coded error. */
export const badQuery = 'subscription { messageAdded(room: "x") { noSuchField } }';

/** The event of number n, with a field nobody selects. */
export const event = (room, n) => ({ id: String(n), room, text: `m${n}`, author: { name: 'ann' }, secret: 'not selected' });

/**
 * runScenario drives one client through what docs/clients.md promises,
 * against a real node with authentication:
 *
 *  - connect with a token, subscribe with variables and a fragment, and
 *    receive the event projected onto the selection (no unselected field);
 *  - a query the schema refuses gets an error coded
 *    GRAPHQL_VALIDATION_FAILED, and the connection goes on;
 *  - a subscription the client completes stops (the node drops it) while
 *    another goes on;
 *  - the node is killed (SIGKILL), events are published while it is down
 *    and after it is back on the same address: the client resumes and has
 *    every event exactly once, in order.
 *
 * client is an adapter: subscribe(query, variables, sink) returns a
 * function that completes the subscription; sink has next(data),
 * error(codes) and complete(). typename: the client selects __typename.
 */
export async function runScenario(t, env, client, { typename = false } = {}) {
  const room = 'r-' + Math.random().toString(36).slice(2, 8);
  const topic = `chat.${room}`;
  // Apollo Client adds __typename to every selection set; the node answers it.
  const want = (n) => (typename
    ? { messageAdded: { id: String(n), text: `m${n}`, author: { name: 'ann', __typename: 'User' }, __typename: 'Message' } }
    : { messageAdded: { id: String(n), text: `m${n}`, author: { name: 'ann' } } });
  const got = [];
  const other = [];
  const errors = [];
  const failures = [];
  let n = 0;
  const publish = async (count = 1) => { for (let i = 0; i < count; i++) await env.publish(topic, event(room, ++n)); };
  const ids = (list) => list.map((d) => Number(d?.messageAdded?.id));

  client.subscribe(query, { room }, {
    next: (data) => got.push(data),
    error: (codes) => failures.push(codes),
    complete: () => failures.push(['unexpected complete']),
  });
  const stopOther = client.subscribe(query, { room }, {
    next: (data) => other.push(data),
    error: (codes) => failures.push(codes),
    complete: () => {}, // not every client calls it when the client itself stops
  });
  client.subscribe(badQuery, {}, {
    next: (data) => failures.push(['data for a refused query', JSON.stringify(data)]),
    error: (codes) => errors.push(codes),
    complete: () => {},
  });

  await t.test('server error', async () => {
    const codes = await waitFor('the error of the refused query', 20000, () => errors[0]);
    assert.deepEqual(codes, ['GRAPHQL_VALIDATION_FAILED']);
  });

  await t.test('receives the projected event', async () => {
    // A subscription registers after its subscribe is read: publish until
    // both hear, then every later event must arrive.
    await waitFor('the first event', 30000, async () => {
      if (got.length > 0 && other.length > 0) return true;
      await publish();
      await sleep(100);
      return false;
    });
    await publish(3);
    await waitFor('4 events', 20000, () => got.length >= 4 && ids(got).at(-1) === n);
    assert.deepEqual(got.at(-1), want(n));
  });

  await t.test('complete', async () => {
    await waitFor('the second subscription at the last event', 20000, () => ids(other).at(-1) === n);
    stopOther();
    await waitFor('the node to drop the completed subscription', 20000, async () => (await env.subscriptions()) === 1);
    const before = other.length;
    await publish(2);
    await waitFor('the first subscription at the last event', 20000, () => ids(got).at(-1) === n);
    assert.equal(other.length, before, 'a completed subscription received an event');
  });

  await t.test('survives a server kill and restart', async () => {
    const first = ids(got)[0];
    await env.killNode();
    await publish(3); // while no node runs
    await env.startNode();
    await publish(3);
    await waitFor(`every event up to ${n}`, 60000, () => ids(got).at(-1) === n);
    await sleep(300); // anything more would be a duplicate
    const expected = Array.from({ length: n - first + 1 }, (_, i) => first + i);
    assert.deepEqual(ids(got), expected, 'a gap or a duplicate');
    for (const d of got) assert.deepEqual(d, want(Number(d.messageAdded.id)));
  });

  await t.test('no unexpected errors', () => assert.deepEqual(failures, []));
}

/**
 * runScenario's client adapter for an ApolloClient: results with errors
 * (errorPolicy 'all') and errors go to sink.error as codes. Each
 * subscription is added to open (a Set) when one is given.
 */
export function apolloAdapter(apollo, gql, open) {
  return {
    subscribe(query, variables, sink) {
      const sub = apollo.subscribe({ query: gql(query), variables, fetchPolicy: 'no-cache', errorPolicy: 'all' }).subscribe({
        next: (r) => {
          if (r.errors?.length) sink.error(codesOf(r.errors));
          else sink.next(r.data);
        },
        error: (e) => sink.error(codesOf(e)),
        complete: () => sink.complete(),
      });
      open?.add(sub);
      return () => sub.unsubscribe();
    },
  };
}

/** Error codes of a GraphQL error list (or one error, or a close event). */
export function codesOf(err) {
  const list = Array.isArray(err) ? err : err?.graphQLErrors?.length ? err.graphQLErrors : [err];
  return list.map((e) => e?.extensions?.code || (typeof e?.code === 'number' ? `close ${e.code} ${e.reason || ''}` : String(e?.message || e)));
}
