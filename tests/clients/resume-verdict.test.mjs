// @fraiseql/subscriptions-client (clients/js) and resume verdicts
// (docs/protocol.md, "Resume verdict"): when retention removed events the
// client had not received, it reports the gap through onResume and goes
// on live instead of failing; with resumeVerdict: false it fails with
// CURSOR_EXPIRED, as before. (A resume that lost nothing is checked in
// graphql-ws.test.mjs, across a node kill.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from '@fraiseql/subscriptions-client';
import { startEnv, token, query, event, waitFor, sleep, codesOf } from './harness.mjs';

// A stream of at most 16 KiB: a dozen events of 1.5 KB push the oldest out.
const config = 'limits:\n  max_event_bytes: 2048\nnats:\n  max_bytes: 16384\n';
const big = (room, n) => ({ ...event(room, n), pad: 'x'.repeat(1500) });

test('@fraiseql/subscriptions-client reports a gap and goes on live', async (t) => {
  const env = await startEnv({ config });
  const verdicts = [];
  const client = createClient({
    url: env.url,
    webSocketImpl: WebSocket,
    token: token(),
    retryWait: () => new Promise((r) => setTimeout(r, 200)),
    onResume: (v, payload) => verdicts.push({ ...v, room: payload.variables.room }),
  });
  const room = 'r-' + Math.random().toString(36).slice(2, 8);
  const topic = `chat.${room}`;
  let n = 0;
  const got = [];
  const failures = [];
  const ids = () => got.map((d) => Number(d?.messageAdded?.id));
  try {
    client.subscribe({ query, variables: { room } }, {
      next: (r) => got.push(r.data),
      error: (e) => failures.push(codesOf(e)),
      complete: () => failures.push(['unexpected complete']),
    });
    await waitFor('the first event', 30000, async () => {
      if (got.length > 0) return true;
      await env.publish(topic, event(room, ++n));
      await sleep(100);
      return false;
    });
    const before = n;
    await waitFor('every warm-up event', 20000, () => ids().at(-1) === before);

    await t.test('gap', async () => {
      await env.killNode();
      for (let i = 0; i < 12; i++) await env.publish(topic, big(room, ++n)); // the warm-up events are removed
      await env.startNode();
      await env.publish(topic, event(room, ++n));
      const last = n;
      await waitFor(`event ${last}`, 60000, () => ids().at(-1) === last);
      await sleep(300); // anything more would be a duplicate
      assert.deepEqual(failures, []);
      assert.equal(verdicts.length, 1, JSON.stringify(verdicts));
      const [v] = verdicts;
      assert.equal(v.verdict, 'gap');
      assert.equal(v.room, room);
      assert.ok(typeof v.after === 'string' && v.after.length > 0 && typeof v.until === 'string' && v.until.length > 0, JSON.stringify(v));
      // What follows the warm-up: the events still stored, in order, then live.
      const resumed = ids().filter((id) => id > before);
      assert.ok(resumed.length > 0 && resumed[0] > before + 1, `resumed at ${resumed[0]}: nothing was lost?`);
      assert.deepEqual(resumed, Array.from({ length: last - resumed[0] + 1 }, (_, i) => resumed[0] + i), 'a hole or a duplicate after the gap');
      for (const d of got) assert.equal(d.messageAdded.author.name, 'ann'); // no verdict among the results
    });

    await t.test('an expired cursor given at subscribe', async () => {
      const oldCursor = verdicts[0].after;
      const fresh = [];
      const dispose = client.subscribe({ query, variables: { room }, extensions: { cursor: oldCursor } }, {
        next: (r) => fresh.push(r.data),
        error: (e) => failures.push(codesOf(e)),
        complete: () => {},
      });
      await waitFor('the second verdict', 20000, () => verdicts.length === 2);
      assert.equal(verdicts[1].verdict, 'gap');
      await env.publish(topic, event(room, ++n));
      await waitFor(`event ${n}`, 20000, () => Number(fresh.at(-1)?.messageAdded?.id) === n);
      dispose();
      assert.deepEqual(failures, []);

      const plain = createClient({ url: env.url, webSocketImpl: WebSocket, token: token(), resumeVerdict: false, onResume: () => failures.push(['verdict']) });
      const errors = [];
      plain.subscribe({ query, variables: { room }, extensions: { cursor: oldCursor } }, {
        next: (r) => failures.push(['data', JSON.stringify(r)]),
        error: (e) => errors.push(codesOf(e)),
        complete: () => {},
      });
      try {
        await waitFor('CURSOR_EXPIRED', 20000, () => errors.length > 0);
      } finally {
        await plain.dispose();
      }
      assert.deepEqual(errors, [['CURSOR_EXPIRED']]);
      assert.deepEqual(failures, []);
    });
  } finally {
    await client.dispose();
    await env.close();
  }
});
