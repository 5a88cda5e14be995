/**
 * Real Chromium for the console's browser tests: Debian's `chromium` package (or DELTAGATE_CHROMIUM_PATH)
 * driven by playwright-core — nothing is downloaded. `.ci/run` installs the package when it is missing; a
 * machine without it fails these tests with one line saying how to install it. Every page's console errors
 * and uncaught exceptions are collected, and screenshots go to test-artifacts/console/ (git-ignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const SCREENSHOT_DIR = join(process.cwd(), 'test-artifacts', 'console');

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumPath(): string {
  const configured = process.env.DELTAGATE_CHROMIUM_PATH;
  if (configured) return configured;
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found === undefined)
    throw new Error(
      'the console browser tests need Chromium: `apt-get install -y chromium` (Debian), or set DELTAGATE_CHROMIUM_PATH',
    );
  return found;
}

export interface BrowserSession {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors and page exceptions seen so far, as text. */
  problems: string[];
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<BrowserSession> {
  // The flags keep Chromium off the network (this machine has none) and away from the user's profile.
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return {
    browser,
    context,
    page,
    problems,
    async screenshot(name) {
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      await browser.close();
    },
  };
}

/**
 * Every visible form control has an accessible name (a <label>, aria-label or aria-labelledby). The check runs
 * in the page as source text: the test program is type-checked without the DOM library.
 */
const UNLABELLED_CONTROLS = `[...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')))
  .map((el) => el.outerHTML.slice(0, 120))`;

export async function unlabelledControls(page: Page): Promise<string[]> {
  return (await page.evaluate(UNLABELLED_CONTROLS)) as string[];
}

/**
 * Text whose contrast with its background is below WCAG AA (4.5:1, or 3:1 for large text: ≥ 24px, or ≥ 18.66px
 * bold). The background is the first opaque one up the tree (translucent layers are treated as opaque — the
 * console uses none on text). Runs in the page as source text, like UNLABELLED_CONTROLS. The uPlot canvas
 * (drawn, not text) is out of scope.
 */
const LOW_CONTRAST_TEXT = `(() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g) || []; return m.map(Number); };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c; } return [255, 255, 255]; };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || !n.textContent.trim() || el.offsetParent === null || el.closest('.sr-only, .skip-link')) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || Number(s.opacity) === 0) continue;
    const fg = parse(s.color), back = bg(el);
    const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) out.push(n.textContent.trim().slice(0, 40) + ' (' + ratio.toFixed(2) + ' < ' + need + ')');
  }
  return [...new Set(out)];
})()`;

export async function lowContrastText(page: Page): Promise<string[]> {
  return (await page.evaluate(LOW_CONTRAST_TEXT)) as string[];
}
