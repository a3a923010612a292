// Helpers shared by the browser flows (vendor_flow.mjs, admin_flow.mjs): steps and their
// log, TOTP codes, Chromium, and the sign-in, invite and terminal steps both flows take.

import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** How long any one wait may take. */
export const WAIT_MS = 20_000;

let logName = 'flow';

/** Names the flow in its progress lines. */
export function setLogName(name) {
  logName = name;
}

/** One progress line on stderr. */
export function log(message) {
  process.stderr.write(`${logName}: ${message}\n`);
}

/** A step that failed, its message starting with the step's name. */
export class StepFailed extends Error {}

/** Runs `action` as the step `name`: logged, and its failure named after it. */
export async function step(name, action) {
  log(name);
  try {
    return await action();
  } catch (error) {
    throw new StepFailed(`${name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Reads FLOW, runs `run(flow)`, prints its report as one JSON line; exits 1 on failure. */
export async function main(run) {
  let flow;
  try {
    flow = JSON.parse(process.env.FLOW ?? '');
  } catch {
    log('FLOW must hold the flow as a JSON object');
    process.exit(2);
  }
  try {
    const results = await run(flow);
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } catch (error) {
    log(`FAILED ${error instanceof StepFailed ? error.message : error.stack ?? error}`);
    process.exit(1);
  }
}

// --- TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) ---

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const char of text.replace(/[\s=]/g, '').toUpperCase()) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${char}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The TOTP code of `secret` (base32) for time step `counter`. */
export function totp(secret, counter) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const digest = createHmac('sha1', base32Decode(secret)).update(message).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const code = (digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

// The gateway takes a code once per step and never an earlier step: each code of a
// secret comes from a step later than the last one used, waiting for the boundary when
// needed.
const lastStep = new Map();

/** A code for `secret` the gateway has not seen yet. */
export async function freshCode(secret) {
  let now = Math.floor(Date.now() / 30_000);
  const last = lastStep.get(secret) ?? -1;
  if (now <= last) {
    const wait = (last + 1) * 30_000 - Date.now() + 300;
    log(`waiting ${Math.ceil(wait / 1000)} s for the next TOTP step`);
    await new Promise((resolve) => setTimeout(resolve, wait));
    now = Math.floor(Date.now() / 30_000);
  }
  lastStep.set(secret, now);
  return totp(secret, now);
}

// --- the browser ---

/** A CSS selector for a data-testid. */
export const byTestId = (id) => `[data-testid="${id}"]`;

/** Debian's Chromium, headless. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh page in its own context (its own cookies), its errors collected in `errors`. */
export async function newPage(browser, errors, label = '') {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    viewport: { width: 1200, height: 800 },
  });
  return watchedPage(context, errors, label);
}

/** Another page in `page`'s browser context (signed in as the same user). */
export async function newTab(page, errors, label = '') {
  return watchedPage(page.context(), errors, label);
}

async function watchedPage(context, errors, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const who = label ? `${label} ` : '';
  page.on('pageerror', (error) => {
    errors.push(`${who}${error.message}`);
    log(`${who}page error: ${error.message}`);
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    log(`${who}console error: ${message.text()}`);
    // Refused API calls (401 before sign-in, the forbidden probes) are expected.
    if (!message.text().startsWith('Failed to load resource')) errors.push(`${who}${message.text()}`);
  });
  return page;
}

/** Saves a screenshot of the page as `name` in `dir`, when a dir is given. */
export async function screenshot(page, dir, name) {
  if (!dir) return;
  await page.screenshot({ path: join(dir, name) });
  log(`saved ${join(dir, name)}`);
}

/** The shown terminal tab's buffer. */
export async function terminalText(page) {
  return page.evaluate(() => window.portcullisTerminalText());
}

/**
 * Visible text of the page outside terminal screens (whose content is the node's, not
 * the UI's), lowercased.
 */
export async function pageText(page) {
  return page.evaluate(() => {
    const parts = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement;
      if (!parent || parent.closest('.xterm') || !parent.checkVisibility()) continue;
      const text = node.textContent.trim();
      if (text) parts.push(text);
    }
    return parts.join(' ').replace(/\s+/g, ' ').toLowerCase();
  });
}

// After signing in: the node list, or the refusal shown instead.
async function waitForRowsOrError(page, errorId) {
  const shown = await page.waitForSelector(`${byTestId('node-row')}, ${byTestId(errorId)}, ${byTestId('user-name')}`);
  if ((await shown.getAttribute('data-testid')) === errorId) {
    throw new Error(`the page says: ${await shown.textContent()}`);
  }
}

/** Signs in with password and a fresh TOTP code from the sign-in page. */
export async function signIn(page, { base_url, user, password, totp_secret }, screenshots = null) {
  await step('open the sign-in page', async () => {
    await page.goto(new URL('/', base_url).href);
    await page.waitForSelector(byTestId('login-user'));
  });
  await screenshot(page, screenshots, 'login.png');
  await step(`sign in as ${user}`, async () => {
    await page.fill(byTestId('login-user'), user);
    await page.fill(byTestId('login-password'), password);
    await page.fill(byTestId('login-code'), await freshCode(totp_secret));
    await page.click(byTestId('login-submit'));
    await waitForRowsOrError(page, 'login-error');
  });
}

/** Redeems an invite (or setup) link with a password and a code; answers the TOTP secret. */
export async function redeemInvite(page, { base_url, invite_path, user, password }) {
  const secret = await step(`open the invite ${invite_path}`, async () => {
    await page.goto(new URL(invite_path, base_url).href);
    await page.waitForSelector(`${byTestId('invite-user')}, ${byTestId('invite-error')}`);
    const refused = await page.$(byTestId('invite-error'));
    if (refused) throw new Error(`the page says: ${await refused.textContent()}`);
    const welcome = await page.textContent(byTestId('invite-user'));
    if (!welcome.includes(user)) throw new Error(`welcome text "${welcome}" does not name ${user}`);
    await page.waitForFunction(() => document.querySelector('[data-testid="invite-secret"]')?.textContent?.trim());
    const qr = await page.$eval(byTestId('invite-qr'), (canvas) => canvas.width > 0 && canvas.height > 0);
    if (!qr) throw new Error('the QR canvas is empty');
    return (await page.textContent(byTestId('invite-secret'))).trim();
  });
  await step('redeem the invite with password and code', async () => {
    await page.fill(byTestId('invite-password'), password);
    await page.fill(byTestId('invite-password2'), password);
    await page.fill(byTestId('invite-code'), await freshCode(secret));
    await page.click(byTestId('invite-submit'));
    await waitForRowsOrError(page, 'invite-error');
    if (new URL(page.url()).pathname !== '/') throw new Error(`still at ${page.url()}`);
  });
  return secret;
}

/** Opens a terminal on `node` (as `login`, else the first) and waits for it to open. */
/** How long a login shell may take to print anything. */
const SHELL_START_MS = 90_000;

export async function openTerminal(page, { node, login }) {
  return step(`open a terminal on ${node}`, async () => {
    const row = `${byTestId('node-row')}[data-node="${node}"]`;
    await page.waitForSelector(row);
    if (login) await page.selectOption(`${row} ${byTestId('node-login')}`, login);
    const chosen = await page.$eval(`${row} ${byTestId('node-login')}`, (select) => select.value);
    await page.click(`${row} ${byTestId('node-open')}`);
    const title = `${chosen}@${node}`;
    await page.waitForSelector(`${byTestId('tab')}[data-title="${title}"]`);
    await page.waitForSelector(`${byTestId('terminal')}[data-state="open"], ${byTestId('terminal')}[data-state="closed"]`);
    if ((await page.getAttribute(byTestId('terminal'), 'data-state')) === 'closed') {
      const message = await page.textContent(byTestId('terminal-message')).catch(() => '');
      throw new Error(`the terminal closed at once: ${message}`);
    }
    // The login shell's start-up files may be slow on a loaded machine (this image's
    // .bashrc runs pyenv, which takes a lock other logins hold): wait for its first output
    // before typing, longer than any one step.
    await page.waitForFunction(() => window.portcullisTerminalText().trim().length > 0, null, {
      timeout: SHELL_START_MS,
    });
    return title;
  });
}
