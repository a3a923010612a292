// Drives the vendor's browser flow against a running gateway with headless Chromium.
//
// FLOW (env, JSON): base_url, invite_path? | (user, password, totp_secret), node, login?,
// expect_nodes, commands [{type, expect}], resize? {width, height}, upload? {local, remote},
// download? {remote, save_to}, paste? {text, expect}, second_tab? {close_with},
// screenshots? (dir), forbidden_paths.
// Progress goes to stderr; one JSON line of results to stdout. Exits 1 on the first
// failed step, saying which.

import { mkdirSync } from 'node:fs';
import {
  WAIT_MS,
  byTestId,
  launchBrowser,
  log,
  main,
  newPage,
  openTerminal,
  pageText,
  redeemInvite as redeem,
  screenshot,
  setLogName,
  signIn as signInWith,
  step,
  terminalText,
} from './lib.mjs';

setLogName('vendor_flow');

const STTY_SIZE = /^(\d+) (\d+)\s*$/;

// The command's tail: a long command wraps, and its last part is on the last line.
const tailOf = (command) => command.slice(-12);

function linesShowing(text, command) {
  const tail = tailOf(command);
  const found = [];
  text.split('\n').forEach((line, index) => {
    if (line.includes(tail)) found.push(index);
  });
  return found;
}

// Types `command` + Enter into the terminal and waits until a line after the command's
// echo (the first line showing it that was not there before) satisfies `match`.
async function runCommand(page, command, match, what) {
  const before = linesShowing(await terminalText(page), command).length;
  await page.click(byTestId('terminal'));
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
  const deadline = Date.now() + WAIT_MS;
  let text = '';
  while (Date.now() < deadline) {
    text = await terminalText(page);
    const echoed = linesShowing(text, command);
    if (echoed.length > before) {
      const line = text.split('\n').slice(echoed[before] + 1).find(match);
      if (line !== undefined) return line;
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`no ${what} after \`${command}\` within ${WAIT_MS / 1000} s; terminal shows:\n${trimText(text)}`);
}

function trimText(text) {
  return text.replace(/\s+$/, '');
}

async function sttySize(page) {
  const line = await runCommand(page, 'stty size', (l) => STTY_SIZE.test(l), '`stty size` answer');
  const [, rows, cols] = STTY_SIZE.exec(line);
  return `${rows} ${cols}`;
}

// The terminal's rows as xterm lays them out (DOM renderer), or null.
async function renderedRows(page) {
  return page.evaluate(() => {
    const rows = document.querySelector('[data-testid="terminal"] .xterm-rows');
    return rows ? rows.childElementCount : null;
  });
}

// --- the flow ---

async function signIn(page, flow, results) {
  await signInWith(page, flow, flow.screenshots);
  results.totp_secret = flow.totp_secret;
}

async function redeemInvite(page, flow, results) {
  results.totp_secret = await redeem(page, flow);
}

async function listNodes(page, flow, results) {
  await step('read the node list', async () => {
    const name = (await page.textContent(byTestId('user-name')))?.trim();
    if (name !== flow.user) throw new Error(`header names "${name}", not ${flow.user}`);
    for (const node of flow.expect_nodes ?? []) {
      await page.waitForSelector(`${byTestId('node-row')}[data-node="${node}"]`);
    }
    if ((flow.expect_nodes ?? []).length === 0 && flow.node) {
      await page.waitForSelector(byTestId('node-row'));
    }
    results.nodes_seen = await page.$$eval(byTestId('node-row'), (rows) => rows.map((row) => row.dataset.node));
    results.nodes_online = await page.$$eval(byTestId('node-row'), (rows) =>
      Object.fromEntries(
        rows.map((row) => [row.dataset.node, row.querySelector('[data-testid="node-online"]')?.textContent?.trim()]),
      ),
    );
    log(`nodes: ${results.nodes_seen.join(', ')}`);
  });
  await screenshot(page, flow.screenshots, 'nodes.png');
}

async function runCommands(page, flow) {
  for (const { type, expect } of flow.commands ?? []) {
    await step(`run \`${type}\`, expect "${expect}"`, async () => {
      await runCommand(page, type, (line) => line.includes(expect), `"${expect}"`);
    });
  }
}

async function resize(page, flow, results) {
  results.stty_before = await step('read the terminal size', () => sttySize(page));
  await step(`resize the window to ${flow.resize.width}x${flow.resize.height}`, async () => {
    const before = await renderedRows(page);
    await page.setViewportSize({ width: flow.resize.width, height: flow.resize.height });
    // Bounded wait for xterm to refit; if it never does, stty_after shows it.
    await page
      .waitForFunction(
        (rows) => document.querySelector('[data-testid="terminal"] .xterm-rows')?.childElementCount !== rows,
        before,
        { timeout: 5_000 },
      )
      .catch(() => log('the terminal kept its row count'));
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  });
  results.stty_after = await step('read the terminal size again', () => sttySize(page));
  log(`stty size: ${results.stty_before} -> ${results.stty_after}`);
}

async function upload(page, flow, results) {
  await step(`upload ${flow.upload.local} to ${flow.upload.remote}`, async () => {
    await page.setInputFiles(byTestId('files-upload-input'), flow.upload.local);
    await page.fill(byTestId('files-upload-path'), flow.upload.remote);
    await page.click(byTestId('files-upload-submit'));
    await page.waitForSelector(byTestId('files-upload-result'));
    results.upload_result = (await page.textContent(byTestId('files-upload-result'))).trim();
    log(`upload: ${results.upload_result}`);
  });
}

async function download(page, flow, results) {
  await step(`download ${flow.download.remote} to ${flow.download.save_to}`, async () => {
    await page.fill(byTestId('files-download-path'), flow.download.remote);
    const [file] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT_MS }),
      page.click(byTestId('files-download-submit')),
    ]);
    const failure = await file.failure();
    if (failure) {
      results.downloaded = false;
      results.download_error = failure;
      log(`download failed: ${failure}`);
      return;
    }
    await file.saveAs(flow.download.save_to);
    results.downloaded = true;
  });
}

// Pastes text into the terminal as the browser does (a paste event on xterm's input),
// then presses Enter and waits for the expected output.
async function paste(page, flow, results) {
  await step(`paste \`${flow.paste.text}\`, expect "${flow.paste.expect}"`, async () => {
    await page.click(byTestId('terminal'));
    await page.$eval(
      `${byTestId('terminal')} textarea`,
      (input, text) => {
        const data = new DataTransfer();
        data.setData('text/plain', text);
        input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      },
      flow.paste.text,
    );
    const count = (text) => text.split('\n').filter((l) => l.includes(flow.paste.expect)).length;
    const before = count(await terminalText(page));
    await page.keyboard.press('Enter');
    await page.waitForFunction(
      ([expect, n]) => window.portcullisTerminalText().split('\n').filter((l) => l.includes(expect)).length > n,
      [flow.paste.expect, before],
    );
    results.pasted = flow.paste.expect;
  });
}

// Opens a second terminal on the node in a new tab, ends its shell with `close_with`,
// and reads the banner the tab shows.
async function secondTab(page, flow, results) {
  await step('open a second terminal tab', async () => {
    const tabs = await page.$$(byTestId('tab'));
    await page.click(`${byTestId('node-row')}[data-node="${flow.node}"] ${byTestId('node-open')}`);
    await page.waitForFunction((count) => document.querySelectorAll('[data-testid="tab"]').length > count, tabs.length);
    await page.waitForSelector(`${byTestId('terminal')}[data-state="open"]`);
    results.tabs = await page.$$eval(byTestId('tab'), (all) => all.map((tab) => tab.dataset.title));
  });
  await step(`end the second terminal with \`${flow.second_tab.close_with}\``, async () => {
    await page.click(byTestId('terminal'));
    await page.keyboard.type(flow.second_tab.close_with);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${byTestId('terminal')}[data-state="closed"]`);
    results.closed_message = (await page.textContent(byTestId('terminal-message'))).trim();
    log(`closed: ${results.closed_message}`);
  });
}

async function probeForbidden(page, flow, results) {
  await step('fetch the paths a vendor may not know of', async () => {
    results.forbidden_status = await page.evaluate(async (paths) => {
      const status = {};
      for (const path of paths) status[path] = (await fetch(path, { credentials: 'same-origin' })).status;
      return status;
    }, flow.forbidden_paths ?? []);
  });
}

async function collectPage(page, results) {
  await step('collect links and page text', async () => {
    results.links = await page.$$eval('a[href]', (links) => links.map((a) => a.getAttribute('href')));
    results.page_text = await pageText(page);
  });
}

async function signOut(page, flow, results) {
  await step('sign out', async () => {
    await page.click(byTestId('signout'));
    await page.waitForSelector(byTestId('login-user'));
    results.signed_out = true;
  });
  if (flow.invite_path) await screenshot(page, flow.screenshots, 'login.png');
}

async function run(flow) {
  if (flow.screenshots) mkdirSync(flow.screenshots, { recursive: true });
  const results = {
    nodes_seen: [],
    nodes_online: {},
    terminal_text: '',
    stty_before: null,
    stty_after: null,
    upload_result: null,
    downloaded: false,
    forbidden_status: {},
    links: [],
    page_text: '',
    totp_secret: null,
    page_errors: [],
  };
  const browser = await launchBrowser();
  try {
    const page = await newPage(browser, results.page_errors);

    if (flow.invite_path) await redeemInvite(page, flow, results);
    else await signIn(page, flow, results);
    await listNodes(page, flow, results);

    const wantsTerminal =
      (flow.commands ?? []).length > 0 || flow.resize || flow.upload || flow.download || flow.paste || flow.second_tab;
    if (wantsTerminal) {
      await openTerminal(page, flow);
      await runCommands(page, flow);
      await screenshot(page, flow.screenshots, 'terminal.png');
      if (flow.resize) await resize(page, flow, results);
      results.terminal_text = trimText(await terminalText(page));
      if (flow.upload) await upload(page, flow, results);
      if (flow.download) await download(page, flow, results);
      if (flow.paste) await paste(page, flow, results);
      if (flow.second_tab) await secondTab(page, flow, results);
    }
    await probeForbidden(page, flow, results);
    await collectPage(page, results);
    await signOut(page, flow, results);
  } finally {
    await browser.close();
  }
  return results;
}

await main(run);
