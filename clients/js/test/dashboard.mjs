// Drives examples/dashboard's page in headless Chromium for its test:
// waits until the chart has drawn several points and redrawn as more came,
// checks that the canvas holds a drawing, saves a screenshot to SCREENSHOT,
// and prints {"points":N,"inked":N} on stdout.
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 420 } });
  page.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
  await page.goto(process.env.PAGE_URL);
  const points = () => page.evaluate(() => Number(document.body.dataset.points || 0));
  await page.waitForFunction(() => Number(document.body.dataset.points || 0) >= 3, null, { timeout: 30000 });
  const first = await points();
  await page.waitForFunction((n) => Number(document.body.dataset.points || 0) > n, first, { timeout: 30000 });
  const inked = await page.evaluate(() => {
    const c = document.getElementById('chart');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  await page.screenshot({ path: process.env.SCREENSHOT });
  process.stdout.write(JSON.stringify({ points: await points(), first, inked }) + '\n');
} finally {
  await browser.close();
}
