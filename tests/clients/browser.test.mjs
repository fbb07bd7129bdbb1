// graphql-ws's browser build in a page of another origin (allowed by
// ws.origin_patterns) in headless Chromium: Debian's chromium driven by
// playwright-core.
import { test } from 'node:test';
import { createServer } from 'node:http';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startEnv, runScenario, token, freePort, repo } from './harness.mjs';

const here = join(repo, 'tests', 'clients');
const files = {
  '/': ['text/html', join(here, 'browser.html')],
  '/graphql-ws.min.js': ['text/javascript', join(here, 'node_modules', 'graphql-ws', 'umd', 'graphql-ws.min.js')],
};

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

test('browser (headless Chromium)', async (t) => {
  await access(executablePath).catch(() => {
    throw new Error(`Chromium is required: apt-get install chromium (or set CHROMIUM); ${executablePath} not found`);
  });
  const port = await freePort();
  const static_ = createServer(async (req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[0] }).end(await readFile(f[1]));
  });
  await new Promise((r) => static_.listen(port, '127.0.0.1', r));
  const env = await startEnv({ config: `ws:\n  origin_patterns: ["127.0.0.1:${port}"]\n` });
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let polling = true;
  try {
    const page = await browser.newPage();
    page.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
    await page.goto(`http://127.0.0.1:${port}/?` + new URLSearchParams({ url: env.url, token: token() }));
    const sinks = {};
    let next = 0;
    // Relay what the page received to the scenario's sinks.
    const poll = (async () => {
      while (polling) {
        const events = await page.evaluate(() => window.__events.splice(0));
        for (const e of events) {
          const s = sinks[e.key];
          if (e.kind === 'next') s.next(e.data);
          else if (e.kind === 'error') s.error(e.codes);
          else s.complete();
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await runScenario(t, env, {
      subscribe(query, variables, sink) {
        const key = String(++next);
        sinks[key] = sink;
        page.evaluate(([k, q, v]) => window.subscribe(k, q, v), [key, query, variables]);
        return () => { page.evaluate((k) => window.unsubscribe(k), key); };
      },
    });
    polling = false;
    await poll;
  } finally {
    polling = false;
    await browser.close();
    await env.close();
    static_.close();
  }
});
