// Drives examples/chat's page in two tabs of headless Chromium for its
// test: waits until both are connected and hear the room, then ann sends
// "hi bob" from the first and bob "hi ann" from the second, typed into the
// form, and prints each tab's log as JSON once both show both messages.
// PAGE_URL is the page with ?room=; CHROMIUM the browser.
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const tabs = [await context.newPage(), await context.newPage()];
  for (const tab of tabs) {
    tab.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
    await tab.goto(process.env.PAGE_URL);
    await tab.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, { timeout: 30000 });
  }
  const log = (tab) => tab.evaluate(() => [...document.querySelectorAll('#log p')].map((p) => p.textContent));
  const send = async (tab, author, text) => {
    await tab.fill('#author', author);
    await tab.fill('#text', text);
    await tab.click('#send button');
    // The form clears the message once POST /send has succeeded.
    await tab.waitForFunction(() => document.getElementById('text').value === '', null, { timeout: 10000 });
  };
  // Each tab's subscription registers after its ack: speak until both hear.
  for (let i = 0; ; i++) {
    if (i === 50) throw new Error('the tabs heard nothing after 50 messages');
    await send(tabs[0], 'system', 'hello');
    await new Promise((r) => setTimeout(r, 200));
    if ((await log(tabs[0])).length > 0 && (await log(tabs[1])).length > 0) break;
  }
  await new Promise((r) => setTimeout(r, 500));
  const before = await Promise.all(tabs.map(log));
  await send(tabs[0], 'ann', 'hi bob');
  await send(tabs[1], 'bob', 'hi ann');
  for (const [i, tab] of tabs.entries()) {
    await tab.waitForFunction((n) => document.querySelectorAll('#log p').length >= n + 2, before[i].length, { timeout: 15000 });
  }
  await new Promise((r) => setTimeout(r, 300)); // anything more would be a duplicate
  const after = await Promise.all(tabs.map(log));
  process.stdout.write(JSON.stringify(after.map((l, i) => l.slice(before[i].length))) + '\n');
} finally {
  await browser.close();
}
