// Drives browser.html in headless Chromium (Debian's chromium, through
// playwright-core), for the integration suite: prints one JSON line per
// result the page received, until killed. PAGE_URL is the page with its
// query string; CHROMIUM the browser (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
const page = await browser.newPage();
page.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
await page.goto(process.env.PAGE_URL);
let seen = 0;
const stop = async () => { await browser.close(); process.exit(0); };
process.on('SIGTERM', stop);
for (;;) {
  const { results, errors } = await page.evaluate(() => ({ results: window.__results, errors: window.__errors }));
  for (; seen < results.length; seen++) process.stdout.write(JSON.stringify({ event: 'data', result: results[seen] }) + '\n');
  for (const e of errors) process.stdout.write(JSON.stringify({ event: 'error', error: e }) + '\n');
  if (errors.length) await page.evaluate(() => { window.__errors = []; });
  await new Promise((r) => setTimeout(r, 50));
}
