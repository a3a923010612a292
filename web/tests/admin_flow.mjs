// Drives the admin console against a running gateway with headless Chromium: an admin
// watches a vendor's terminal live, kills it, finds it by search in the recordings, plays
// it, and reads the audit chain; the vendor meanwhile sees nothing of it, and finds every
// admin path answering like an unknown one.
//
// FLOW (env, JSON): base_url, admin {user, password, totp_secret} | {setup_path, user,
// password}, vendor {invite_path, user, password, login?}, node, marker, screenshots? (dir).
// Progress goes to stderr; one JSON line of results to stdout. Exits 1 on the first
// failed step, saying which. `vendor_admin_status` and `vendor_admin_same_as_unknown` are
// keyed by "METHOD PATH".

import { mkdirSync } from 'node:fs';
import {
  WAIT_MS,
  byTestId,
  launchBrowser,
  log,
  main,
  newPage,
  newTab,
  openTerminal,
  pageText,
  redeemInvite,
  screenshot,
  setLogName,
  signIn,
  step,
} from './lib.mjs';

setLogName('admin_flow');

/** How long the search retries while the recording is indexed in the background. */
const SEARCH_MS = 30_000;

const watchText = (page) => page.evaluate(() => window.portcullisWatchText());
const playerText = (page) => page.evaluate(() => window.portcullisPlayerText());

// The vendor's terminal area as structure and attributes, leaving out the xterm itself
// (its content is the node's output, which the vendor's own typing changes).
async function terminalArea(page) {
  return page.evaluate(() => {
    const area = document.querySelector('[data-testid="tab"]')?.closest('section') ?? document.body;
    const walk = (element) => {
      if (element.classList.contains('xterm')) return '<xterm/>';
      const attributes = [...element.attributes]
        .filter((attribute) => attribute.name !== 'style')
        .map((attribute) => `${attribute.name}="${attribute.value}"`)
        .join(' ');
      const text = [...element.childNodes]
        .filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.textContent.trim())
        .join('');
      return `<${element.tagName.toLowerCase()} ${attributes}>${text}${[...element.children].map(walk).join('')}</>`;
    };
    return walk(area);
  });
}

async function signInAdmin(page, flow, results) {
  const admin = flow.admin;
  if (admin.setup_path) {
    results.admin_totp_secret = await redeemInvite(page, {
      base_url: flow.base_url,
      invite_path: admin.setup_path,
      user: admin.user,
      password: admin.password,
    });
  } else {
    await signIn(page, { base_url: flow.base_url, ...admin });
    results.admin_totp_secret = admin.totp_secret;
  }
  await step('the admin sees the console navigation', async () => {
    await page.waitForSelector(byTestId('nav-nodes'));
    results.admin_nav = await page.$$eval('nav [data-testid^="nav-"]', (links) => links.map((a) => a.dataset.testid));
  });
}

async function watchSession(admin, vendor, flow, results) {
  const row = `${byTestId('session-row')}[data-user="${flow.vendor.user}"][data-kind="shell"]`;
  results.session_id = await step(`find ${flow.vendor.user}'s shell among the live sessions`, async () => {
    await admin.click(byTestId('nav-sessions'));
    await admin.waitForSelector(row);
    return admin.getAttribute(row, 'data-session-id');
  });
  const sessionRow = `${byTestId('session-row')}[data-session-id="${results.session_id}"]`;
  await step('record the vendor page before the watch', async () => {
    results.vendor_text_before = await pageText(vendor);
    results.vendor_dom_before = await terminalArea(vendor);
  });
  await step(`watch session ${results.session_id}`, async () => {
    await admin.click(`${sessionRow} ${byTestId('session-watch')}`);
    await admin.waitForSelector(`${byTestId('watch-terminal')}[data-state="open"]`);
  });
  const expect = `${flow.marker}-42`;
  await step(`the vendor types \`echo ${flow.marker}-$((6*7))\`; the watch shows ${expect}`, async () => {
    await vendor.click(byTestId('terminal'));
    await vendor.keyboard.type(`echo ${flow.marker}-$((6*7))`);
    const start = Date.now();
    await vendor.keyboard.press('Enter');
    await admin
      .waitForFunction((text) => window.portcullisWatchText().includes(text), expect, { polling: 20, timeout: WAIT_MS })
      .catch(async () => {
        throw new Error(`the watch never showed ${expect}; it shows:\n${(await watchText(admin)).trimEnd()}`);
      });
    results.watch_latency_ms = Date.now() - start;
    log(`watch latency: ${results.watch_latency_ms} ms`);
    results.watch_text = (await watchText(admin)).trimEnd();
  });
  await step('record the vendor page after the watch', async () => {
    // The vendor's own terminal shows the answer too; then nothing else may differ.
    await vendor.waitForFunction((text) => window.portcullisTerminalText().includes(text), expect);
    results.vendor_text_after = await pageText(vendor);
    results.vendor_dom_after = await terminalArea(vendor);
    results.vendor_dom_same = results.vendor_dom_before === results.vendor_dom_after;
  });
  await screenshot(admin, flow.screenshots, 'sessions.png');
  return sessionRow;
}

// In a second tab (the first keeps watching): the running recording opens in the player,
// whose slider reaches as far as the file surely holds and grows; seeking near its end and
// playing shows the marker the vendor printed, and the player follows what comes next.
// Returns the tab, still playing, for `runningEnds`.
async function playRunning(admin, vendor, flow, results) {
  const expect = `${flow.marker}-42`;
  const tab = await newTab(admin, results.page_errors, 'admin tab');
  let ok = false;
  try {
    await tab.goto(flow.base_url);
    const row = `${byTestId('rec-row')}[data-user="${flow.vendor.user}"]`;
    const player = await step("open the vendor's running recording", async () => {
      await tab.click(byTestId('nav-recordings'));
      await tab.click(row);
      const player = `${byTestId('player')}[data-running="true"]`;
      await tab.waitForSelector(`${player}:not([data-state="loading"])`);
      return player;
    });
    const seekMax = () => tab.$eval(byTestId('player-seek'), (input) => Number(input.max));
    await step('its slider reaches past the start and grows', async () => {
      // Its slider starts from what the recording's file surely holds, then grows.
      await tab.waitForFunction((selector) => Number(document.querySelector(selector).max) > 0, byTestId('player-seek'));
      results.running_seek_max = await seekMax();
      await tab.waitForFunction(
        ([selector, first]) => Number(document.querySelector(selector).max) > first + 0.9,
        [byTestId('player-seek'), results.running_seek_max],
      );
      results.running_seek_max_later = await seekMax();
    });
    await step(`seek near the end and play: the player shows ${expect}`, async () => {
      await tab.$eval(byTestId('player-seek'), (input) => {
        input.value = String(Math.max(0, Number(input.max) - 1));
        input.dispatchEvent(new Event('change', { bubbles: true }));
      });
      await tab.click(byTestId('player-play'));
      await tab.waitForFunction((text) => window.portcullisPlayerText().includes(text), expect);
      results.running_player_text = (await playerText(tab)).trimEnd();
    });
    const later = `${flow.marker}-later`;
    await step(`the vendor prints ${later}-6; the playing player reaches it`, async () => {
      await vendor.keyboard.type(`echo ${later}-$((2*3))`);
      await vendor.keyboard.press('Enter');
      const start = Date.now();
      await tab
        .waitForFunction((text) => window.portcullisPlayerText().includes(text), `${later}-6`)
        .catch(async () => {
          throw new Error(`the player never showed ${later}-6; it shows:\n${(await playerText(tab)).trimEnd()}`);
        });
      results.running_follow_ms = Date.now() - start;
      log(`the running recording's player showed new output after ${results.running_follow_ms} ms`);
      results.running_player_state = await tab.getAttribute(player, 'data-state');
    });
    ok = true;
    return tab;
  } finally {
    if (!ok) await tab.close();
    await admin.bringToFront();
  }
}

// Once the session was killed, the player that followed it plays to its end: ended, no
// longer growing, at the recording's last event.
async function runningEnds(tab, results) {
  try {
    await step('the followed recording ends in its player', async () => {
      const ended = `${byTestId('player')}[data-running="false"][data-state="ended"]`;
      await tab.waitForSelector(ended);
      const max = () => tab.$eval(byTestId('player-seek'), (input) => Number(input.max));
      results.ended_seek_max = await max();
      await tab.waitForTimeout(1200);
      results.ended_seek_max_later = await max();
      results.ended_time = Number(await tab.getAttribute(ended, 'data-time'));
      results.ended_text = (await playerText(tab)).trimEnd();
    });
  } finally {
    await tab.close();
  }
}

async function killSession(admin, vendor, sessionRow, results) {
  await step(`kill session ${results.session_id}`, async () => {
    await admin.click(`${sessionRow} ${byTestId('session-kill')}`);
    await admin.click(byTestId('confirm-yes'));
    await vendor.waitForSelector(`${byTestId('terminal')}[data-state="closed"]`);
    results.vendor_closed_message = (await vendor.textContent(byTestId('terminal-message'))).trim();
    log(`the vendor's terminal says: ${results.vendor_closed_message}`);
    await admin.waitForSelector(byTestId('watch-message'));
    results.watch_closed_message = (await admin.textContent(byTestId('watch-message'))).trim();
  });
}

async function searchAndPlay(admin, flow, results) {
  const expect = `${flow.marker}-42`;
  const hit = await step(`search the recordings for ${flow.marker}`, async () => {
    await admin.click(byTestId('nav-recordings'));
    await admin.waitForSelector(byTestId('rec-search-input'));
    await admin.fill(byTestId('rec-search-input'), flow.marker);
    const deadline = Date.now() + SEARCH_MS;
    for (;;) {
      await admin.click(byTestId('rec-search-submit'));
      const found = await admin
        .waitForSelector(byTestId('search-hit'), { timeout: 2_000 })
        .then(() => true)
        .catch(() => false);
      if (found) break;
      if (Date.now() > deadline) throw new Error(`no hit within ${SEARCH_MS / 1000} s`);
    }
    const hits = await admin.$$eval(byTestId('search-hit'), (rows) =>
      rows.map((row) => ({ id: row.dataset.recordingId, t: row.dataset.t, text: row.textContent })),
    );
    // The output line rather than the typed command, when both are there.
    return hits.find((h) => h.text.includes(expect)) ?? hits[0];
  });
  results.search_hit_t = Number(hit.t);
  results.search_hit_recording_id = hit.id;
  log(`hit: recording ${hit.id} at ${hit.t} s`);
  await screenshot(admin, flow.screenshots, 'search.png');

  const player = `${byTestId('player')}[data-recording-id="${hit.id}"]`;
  const settled = `${player}:is([data-state="paused"], [data-state="playing"], [data-state="ended"])`;
  await step('open the player at the hit', async () => {
    await admin.click(`${byTestId('search-hit')}[data-recording-id="${hit.id}"][data-t="${hit.t}"]`);
    await admin.waitForSelector(settled);
    results.player_text_at_hit = (await playerText(admin)).trimEnd();
    results.player_time_at_hit = Number(await admin.getAttribute(player, 'data-time'));
  });
  await screenshot(admin, flow.screenshots, 'player.png');
  await step('seek to the end', async () => {
    const max = await admin.$eval(byTestId('player-seek'), (input) => {
      input.value = input.max;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new Event('change', { bubbles: true }));
      return Number(input.max);
    });
    results.player_duration = max;
    await admin.waitForFunction(
      ([selector, end]) => {
        const element = document.querySelector(selector);
        if (!element) return false;
        const state = element.getAttribute('data-state');
        return state === 'ended' || (state !== 'loading' && Math.abs(Number(element.getAttribute('data-time')) - end) < 0.2);
      },
      [player, max],
    );
    results.player_text_at_end = (await playerText(admin)).trimEnd();
    results.player_time_at_end = Number(await admin.getAttribute(player, 'data-time'));
    results.player_state_at_end = await admin.getAttribute(player, 'data-state');
  });
}

async function readAudit(admin, flow, results) {
  await step('read the audit chain and events', async () => {
    await admin.click(byTestId('nav-audit'));
    const chain = await admin.waitForSelector(byTestId('audit-chain'));
    results.audit_chain_ok = (await chain.getAttribute('data-ok')) === 'true';
    results.audit_chain_text = (await chain.textContent()).trim().replace(/\s+/g, ' ');
    await admin.waitForSelector(byTestId('audit-row'));
    results.audit_types = await admin.$$eval(byTestId('audit-row'), (rows) =>
      rows.slice(0, 50).map((row) => row.dataset.type),
    );
  });
  await screenshot(admin, flow.screenshots, 'audit.png');
}

// The management pages, each used once the way an operator would.
async function manage(admin, flow, results) {
  await step('invite a user from the users page', async () => {
    await admin.click(byTestId('nav-users'));
    await admin.fill(byTestId('invite-name'), 'dave');
    await admin.fill(byTestId('invite-roles'), 'vendor-test');
    await admin.fill(byTestId('invite-ttl'), '24h');
    await admin.click(byTestId('invite-create'));
    const url = await admin.waitForSelector(byTestId('invite-url'));
    results.invite_url_shown = (await url.textContent()).trim();
    await admin.waitForSelector(`${byTestId('user-row')}[data-user="dave"]`);
    await admin.click(`${byTestId('user-row')}[data-user="dave"] ${byTestId('user-lock')}`);
    await admin.waitForSelector(`${byTestId('user-row')}[data-user="dave"][data-locked="true"]`);
    results.users_listed = await admin.$$eval(byTestId('user-row'), (rows) => rows.map((r) => r.dataset.user));
  });
  await step('read the nodes page and make a join token', async () => {
    await admin.click(byTestId('nav-nodes-admin'));
    await admin.waitForSelector(byTestId('admin-node-row'));
    results.admin_nodes = await admin.$$eval(byTestId('admin-node-row'), (rows) =>
      Object.fromEntries(
        rows.map((r) => [r.dataset.node, r.querySelector('[data-testid="node-host-key"]')?.textContent?.trim()]),
      ),
    );
    await admin.fill(byTestId('token-ttl'), '10m');
    await admin.fill(byTestId('token-labels'), 'site=lab');
    await admin.click(byTestId('token-create'));
    const token = await admin.waitForSelector(byTestId('token-value'));
    results.token_shown = (await token.textContent()).trim();
    await admin.waitForSelector(byTestId('token-row'));
  });
  await step('read the roles page', async () => {
    await admin.click(byTestId('nav-roles'));
    await admin.waitForSelector(byTestId('role-row'));
    results.roles_listed = await admin.$$eval(byTestId('role-row'), (rows) => rows.map((r) => r.dataset.role));
  });
}

// Every admin path, with the vendor's session (and its CSRF token on changes).
function adminProbes(node) {
  const n = encodeURIComponent(node);
  return [
    ['GET', '/api/sessions'],
    ['GET', '/api/sessions/x/watch'],
    ['POST', '/api/sessions/x/kill'],
    ['GET', '/api/recordings'],
    ['GET', '/api/recordings/search?q=a'],
    ['GET', '/api/recordings/x'],
    ['GET', '/api/recordings/x/cast'],
    ['GET', '/api/recordings/x/frames'],
    ['GET', '/api/audit'],
    ['GET', '/api/audit/verify'],
    ['GET', '/api/users'],
    ['POST', '/api/users', { name: 'intruder', roles: ['admin'], ttl: null }],
    ['GET', '/api/roles'],
    ['GET', '/api/tokens'],
    ['PUT', `/api/nodes/${n}/labels`, { labels: { owned: 'yes' } }],
    ['POST', `/api/nodes/${n}/repin`],
  ];
}

async function probeAdminPaths(vendor, flow, results) {
  await step('the vendor fetches every admin path', async () => {
    const answers = await vendor.evaluate(async (probes) => {
      const me = await (await fetch('/api/me', { credentials: 'same-origin' })).json();
      const unknown = await (await fetch('/api/nonexistent', { credentials: 'same-origin' })).text();
      const out = {};
      for (const [method, path, body] of probes) {
        const headers = { Accept: 'application/json' };
        if (method !== 'GET') headers['X-CSRF-Token'] = me.csrf;
        if (body) headers['Content-Type'] = 'application/json';
        const response = await fetch(path, {
          method,
          headers,
          body: body ? JSON.stringify(body) : undefined,
          credentials: 'same-origin',
        });
        out[`${method} ${path}`] = { status: response.status, same: (await response.text()) === unknown };
      }
      return out;
    }, adminProbes(flow.node));
    results.vendor_admin_status = Object.fromEntries(Object.entries(answers).map(([key, a]) => [key, a.status]));
    results.vendor_admin_same_as_unknown = Object.fromEntries(Object.entries(answers).map(([key, a]) => [key, a.same]));
  });
  await step("collect the vendor's links and page text", async () => {
    results.vendor_links = await vendor.$$eval('a[href]', (links) => links.map((a) => a.getAttribute('href')));
    results.vendor_nav = await vendor.$$eval('[data-testid^="nav-"]', (links) => links.map((a) => a.dataset.testid));
    results.vendor_page_text = await pageText(vendor);
  });
}

async function run(flow) {
  if (flow.screenshots) mkdirSync(flow.screenshots, { recursive: true });
  const results = { page_errors: [] };
  const browser = await launchBrowser();
  try {
    const admin = await newPage(browser, results.page_errors, 'admin');
    const vendor = await newPage(browser, results.page_errors, 'vendor');
    await signInAdmin(admin, flow, results);
    results.vendor_totp_secret = await redeemInvite(vendor, { base_url: flow.base_url, ...flow.vendor });
    await openTerminal(vendor, { node: flow.node, login: flow.vendor.login });
    const sessionRow = await watchSession(admin, vendor, flow, results);
    const followed = await playRunning(admin, vendor, flow, results);
    await killSession(admin, vendor, sessionRow, results);
    await runningEnds(followed, results);
    await searchAndPlay(admin, flow, results);
    await readAudit(admin, flow, results);
    await manage(admin, flow, results);
    await probeAdminPaths(vendor, flow, results);
  } finally {
    await browser.close();
  }
  return results;
}

await main(run);
