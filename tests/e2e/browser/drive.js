// Drives Debian's Chromium, headless, through voice-service's test page: loads PAGE_URL, waits for the
// pong, sends a text, waits until the spoken reply is received and played (or fails to play), saves a
// screenshot, and prints one JSON report on stdout. test_browser.py makes the assertions; this script
// only fails (exit 1, JSON with "error") when the browser cannot be driven at all.
//   node drive.js PAGE_URL SCREENSHOT.png TEXT
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {chromium} = require('playwright-core');

const [pageUrl, screenshot, text] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 8000;

async function main() {
  const report = {page_url: pageUrl, websockets: [], console: [], page_errors: []};
  // A fresh profile every run: no cache, no stored permissions, nothing from an earlier run.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: STEP_MS,
      viewport: {width: 1000, height: 760},
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-quic', '--disable-sync'],
    });
    report.browser = context.browser() ? context.browser().version() : null;
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => report.page_errors.push(String(e)));
    // The WebSockets the page opened, as the browser saw them (URL, frames, close).
    page.on('websocket', (ws) => {
      const entry = {url: ws.url(), sent: 0, received: 0, closed: false};
      report.websockets.push(entry);
      ws.on('framesent', () => entry.sent++);
      ws.on('framereceived', () => entry.received++);
      ws.on('close', () => { entry.closed = true; });
    });

    const response = await page.goto(pageUrl, {waitUntil: 'load'});
    report.page_status = response ? response.status() : null;
    report.title = await page.title();
    const has = (type) => page.waitForFunction((t) => (window.__events || []).some((e) => e.type === t), type);
    try {
      await has('pong');
    } catch (e) {
      report.wait_error = `no pong: ${e.message.split('\n')[0]}`;
    }
    if (!report.wait_error) {
      await page.fill('#text', text);
      await page.click('#send');  // a real click: the user gesture that lets the reply autoplay
      try {
        await page.waitForFunction(() => (window.__events || []).some(
            (e) => ['media_playing', 'media_error', 'play_error'].includes(e.type)));
        // Let the player run a moment, so "playing" shows in the screenshot.
        await page.waitForTimeout(300);
      } catch (e) {
        report.wait_error = `no reply played: ${e.message.split('\n')[0]}`;
      }
    }
    report.events = await page.evaluate(() => window.__events || []);
    // Read without waiting: a page that is not the test page (an error page) has none of these.
    report.status_text = await page.evaluate(() => document.querySelector('[data-testid=status]')?.textContent);
    report.log_text = await page.evaluate(() => document.querySelector('[data-testid=log]')?.textContent);
    report.audio = await page.evaluate(() => {
      const a = document.querySelector('[data-testid=reply-audio]');
      return a ? {bytes: Number(a.dataset.bytes), duration: a.duration, paused: a.paused,
                  current_time: a.currentTime, error: a.error ? a.error.code : null} : null;
    });
    await page.screenshot({path: screenshot, fullPage: true});
    report.screenshot = screenshot;
  } catch (e) {
    report.error = String(e && e.stack || e);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, {recursive: true, force: true});
  }
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(report.error ? 1 : 0);
}

// The test's own bound: the whole run, browser start to close, well under ctest's timeout.
setTimeout(() => {
  process.stdout.write(JSON.stringify({page_url: pageUrl, error: 'drive.js: timed out after 22 s'}) + '\n');
  process.exit(1);
}, 22000).unref();
main();
