// bench/web_terminal.mjs: the web terminal next to the SSH paths, in one interleaved run.
// Started by bench/web-terminal (which sets up the lab); not meant to be run by hand.
//
// CONFIG (env, JSON):
//   base_url, invite_path, user, password     the web user, redeemed through the invite page
//   node, login                               the terminal's target
//   ssh: {name: [argv...]}                    ssh prefixes (ssh -F cfg -p PORT USER@HOST), in order;
//                                             the first one is the baseline ("direct")
//   reps, keys, warmup, key_gap_ms, size      the figures' sizes
//   ws_node: bool                             also measure the WebSocket from Node (no browser)
//   out_json, out_txt, machine (object)       where the report goes, and the machine's facts
//
// Each rep: echo on every path, then PTY output on every path, paths rotated per rep.
//   echo  `stty raw -echo; printf READY; exec cat` (the yardstick's echo command): warm-up,
//         then one byte at a time, time from send to the echoed byte (page: performance.now()
//         in a cross-origin-isolated page; Node: process.hrtime.bigint()); p50 / p99
//         nearest-rank, as ssh-bench computes them.
//   pty   `printf START; head -c SIZE /dev/zero | tr '\0' a; echo END-MARK`: bytes from START
//         to END-MARK (must be SIZE) over the time between them.
// The web path types the command into the terminal's shell over
// /api/terminal (a new WebSocket, so a new session, per measurement); the SSH paths run it as
// `PREFIX -tt CMD` (a new ssh per measurement), as ssh-bench does.
// Every wait is bounded. Progress on stderr; the report is written to out_json / out_txt and
// printed on stdout.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { launchBrowser, log, newPage, redeemInvite, setLogName, step } from '../web/tests/lib.mjs';

setLogName('web-terminal');

const ECHO_CMD = "stty raw -echo; printf 'RE''ADY'; exec cat";
const ptyCmd = (size) => `printf 'ST''ART\\n'; head -c ${size} /dev/zero | tr '\\0' a; echo END-''MARK`;
const READY_MS = 30_000;
const KEY_MS = 5_000;

// --- shared by the page and Node (passed to the page as source: no closures) ---

/** Feeds chunks of PTY output; answers {bytes, ms} once END-MARK follows START. */
function makePtyScanner(size) {
  const decoder = new TextDecoder('latin1');
  let phase = 0;
  let acc = '';
  let count = 0;
  let start = 0;
  let chunks = 0;
  return (chunk, now) => {
    let bytes = chunk;
    if (phase === 1) chunks += 1;
    if (phase === 0) {
      acc += decoder.decode(chunk);
      const at = acc.indexOf('START\r\n');
      if (at < 0) {
        if (acc.length > 4096) acc = acc.slice(-16);
        return null;
      }
      phase = 1;
      start = now;
      bytes = chunk.subarray(chunk.length - (acc.length - at - 7));
    }
    const end = bytes.indexOf(0x45); // 'E' of END-MARK: the payload is all 'a'
    if (end < 0) {
      count += bytes.length;
      return null;
    }
    count += end;
    if (count !== size) throw new Error(`PTY output: ${count} bytes between START and END-MARK, expected ${size}`);
    return { bytes: count, ms: now - start, chunks };
  };
}

/** Nearest-rank percentile (as ssh-bench's pctl). */
function pctl(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const k = Math.max(0, Math.min(s.length - 1, Math.round((p / 100) * s.length + 0.5) - 1));
  return s[k];
}

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// --- the browser side ---

// Runs in the page: one terminal WebSocket, `figure` echo or pty. Everything bounded.
async function inPage({ url, figure, echoCmd, ptyCmd, size, keys, warmup, gapMs, readyMs, keyMs, scannerSrc }) {
  // eslint-disable-next-line no-eval
  const makePtyScanner = eval(`(${scannerSrc})`);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let waiter = null; // {resolve, reject}: the next binary frame
  let onChunk = null; // pty: every binary frame
  let closed = null;
  const texts = [];
  const fail = (error) => {
    if (waiter) waiter.reject(error);
    waiter = null;
  };
  ws.onmessage = (event) => {
    const t = performance.now();
    if (typeof event.data === 'string') {
      texts.push(event.data);
      return;
    }
    const chunk = new Uint8Array(event.data);
    if (onChunk) onChunk(chunk, t);
    else if (waiter) {
      const w = waiter;
      waiter = null;
      w.resolve({ chunk, t });
    }
  };
  ws.onclose = (event) => {
    closed = `closed ${event.code} ${event.reason} ${texts.join(' ')}`;
    fail(new Error(closed));
  };
  const next = (ms) =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new Error(closed));
      const timer = setTimeout(() => reject(new Error(`no output within ${ms} ms`)), ms);
      const settle = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      waiter = { resolve: settle(resolve), reject: settle(reject) };
    });
  const send = (text) => ws.send(new TextEncoder().encode(text));
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('WebSocket did not open within 10 s')), 10_000);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`WebSocket error ${closed ?? ''}`));
      };
    });
    await next(readyMs); // the shell's first output (prompt or motd)
    if (figure === 'echo') {
      let seen = '';
      const deadline = performance.now() + readyMs;
      send(`${echoCmd}\r`);
      while (!seen.includes('READY')) {
        const { chunk } = await next(Math.max(1, deadline - performance.now()));
        seen = (seen + new TextDecoder('latin1').decode(chunk)).slice(-256);
      }
      await sleep(50); // nothing else may follow READY; cat is reading now
      const lat = [];
      for (let i = 0; i < warmup + keys; i++) {
        if (gapMs) await sleep(gapMs);
        const ch = 97 + (i % 26);
        const got = next(keyMs);
        const t0 = performance.now();
        ws.send(Uint8Array.of(ch));
        const { chunk, t } = await got;
        if (chunk.length !== 1 || chunk[0] !== ch) throw new Error(`keystroke ${i}: sent ${ch}, got [${chunk}]`);
        if (i >= warmup) lat.push((t - t0) * 1000);
      }
      return { lat };
    }
    const scan = makePtyScanner(size);
    let timer;
    try {
      return await new Promise((resolve, reject) => {
        const limit = 30_000 + (size / 1e6) * 2_000;
        timer = setTimeout(() => reject(new Error(`no END-MARK within ${limit} ms`)), limit);
        waiter = { resolve: () => {}, reject };
        onChunk = (chunk, t) => {
          try {
            const done = scan(chunk, t);
            if (done) resolve(done);
          } catch (error) {
            reject(error);
          }
        };
        send(`${ptyCmd}; exit\r`);
      });
    } finally {
      clearTimeout(timer);
    }
  } finally {
    ws.close();
  }
}

// --- the Node side: ssh, and the WebSocket without a browser ---

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Spawns `argv`; `feed(chunk, nowMs)` sees stdout; answers {child, next, stop, stderr}. */
function sshProcess(argv) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let waiter = null;
  let onChunk = null;
  let exited = null;
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  child.stdout.on('data', (chunk) => {
    const t = nowMs();
    if (onChunk) onChunk(chunk, t);
    else if (waiter) {
      const w = waiter;
      waiter = null;
      w.resolve({ chunk, t });
    }
  });
  child.on('exit', (code, signal) => {
    exited = `ssh exited (${code ?? signal}): ${stderr.trim()}`;
    if (waiter) waiter.reject(new Error(exited));
    waiter = null;
  });
  child.on('error', (error) => {
    exited = `ssh: ${error.message}`;
    if (waiter) waiter.reject(error);
  });
  const next = (ms) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error(exited));
      const timer = setTimeout(() => reject(new Error(`no output within ${ms} ms; ${stderr.trim()}`)), ms);
      const settle = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      waiter = { resolve: settle(resolve), reject: settle(reject) };
    });
  const stop = async () => {
    if (exited || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const gone = await Promise.race([
      new Promise((resolve) => child.once('exit', () => resolve(true))),
      new Promise((resolve) => setTimeout(() => resolve(false), 3_000)),
    ]);
    if (!gone) child.kill('SIGKILL');
  };
  return { child, next, stop, setOnChunk: (f) => (onChunk = f), failure: () => exited };
}

async function sshEcho(prefix, cfg) {
  const p = sshProcess([...prefix, '-tt', ECHO_CMD]);
  try {
    let seen = '';
    const deadline = nowMs() + READY_MS;
    while (!seen.includes('READY')) {
      const { chunk } = await p.next(Math.max(1, deadline - nowMs()));
      seen = (seen + chunk.toString('latin1')).slice(-256);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const lat = [];
    const total = cfg.warmup + cfg.keys;
    for (let i = 0; i < total; i++) {
      if (cfg.key_gap_ms) await new Promise((resolve) => setTimeout(resolve, cfg.key_gap_ms));
      const ch = 97 + (i % 26);
      const got = p.next(KEY_MS);
      const t0 = process.hrtime.bigint();
      p.child.stdin.write(Buffer.of(ch));
      const { chunk } = await got;
      const t1 = process.hrtime.bigint();
      if (chunk.length !== 1 || chunk[0] !== ch) throw new Error(`keystroke ${i}: sent ${ch}, got [${[...chunk]}]`);
      if (i >= cfg.warmup) lat.push(Number(t1 - t0) / 1000);
    }
    return { lat };
  } finally {
    await p.stop();
  }
}

async function sshPty(prefix, cfg) {
  const p = sshProcess([...prefix, '-tt', ptyCmd(cfg.size)]);
  let timer;
  try {
    const scan = makePtyScanner(cfg.size);
    const limit = 30_000 + (cfg.size / 1e6) * 2_000;
    return await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no END-MARK within ${limit} ms; ${p.failure() ?? ''}`)), limit);
      p.child.on('exit', () => setTimeout(() => reject(new Error(p.failure() ?? 'ssh exited')), 100));
      p.setOnChunk((chunk, t) => {
        try {
          const done = scan(chunk, t);
          if (done) {
            resolve(done);
          }
        } catch (error) {
          reject(error);
        }
      });
    });
  } finally {
    clearTimeout(timer);
    await p.stop();
  }
}

// The same in-page function, run by Node's own WebSocket (undici) with the page's cookie:
// the gateway's WebSocket relay without the browser's IPC in the way.
async function nodeWs(url, cookie, origin, args) {
  // The gateway's certificate is self-signed: this process only talks to the lab.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const OrigWs = globalThis.WebSocket;
  // The in-page function calls `new WebSocket(url)`: give it the cookie and Origin.
  globalThis.WebSocket = class extends OrigWs {
    constructor(u) {
      super(u, { headers: { Cookie: cookie, Origin: origin } });
    }
  };
  try {
    return await inPage({ ...args, url });
  } finally {
    globalThis.WebSocket = OrigWs;
  }
}

// --- the run ---

function summarize(samples) {
  const out = {};
  for (const [name, s] of Object.entries(samples)) {
    const p50 = s.echo.map((r) => pctl(r, 50));
    const p99 = s.echo.map((r) => pctl(r, 99));
    const mbps = s.pty.map((r) => r.bytes / 1e6 / (r.ms / 1000));
    const chunk = s.pty.map((r) => r.bytes / Math.max(1, r.chunks));
    out[name] = {
      echo_p50_us: median(p50),
      echo_p99_us: median(p99),
      pty_MBps: median(mbps),
      echo_p50_us_runs: p50,
      echo_p99_us_runs: p99,
      pty_MBps_runs: mbps,
      pty_mean_read_B_runs: chunk,
      errors: s.errors,
    };
  }
  return out;
}

const f0 = (v) => (v == null ? '–' : v.toFixed(0));
const f1 = (v) => (v == null ? '–' : v.toFixed(1));
const f2 = (v) => (v == null ? '–' : v.toFixed(2));
const ratio = (a, b) => (a != null && b ? a / b : null);
const rx = (v) => (v == null ? '–' : `${v.toFixed(2)}×`);

function report(cfg, figures, meta) {
  const names = Object.keys(figures);
  const [direct, viaSsh] = names;
  const web = 'web';
  const d = figures[direct];
  const s = figures[viaSsh];
  const w = figures[web];
  const lines = [];
  const p = (line = '') => lines.push(line);
  p(`# Web terminal vs SSH (${meta.date})`);
  p();
  p(`Medians of ${cfg.reps} interleaved reps; echo: ${cfg.keys} keystrokes per rep after ${cfg.warmup} warm-up, ` +
    `${cfg.key_gap_ms} ms apart; PTY output: ${cfg.size} bytes of 'a' per rep; MB = 10^6 B.`);
  p();
  const label = { direct: 'ssh direct', portcullis: 'ssh via portcullis', web: 'web via portcullis', 'ws-node': 'ws via portcullis, Node client' };
  const col = (n) => label[n] ?? `ssh ${n}`;
  p(`| figure | ${names.map(col).join(' | ')} | ${viaSsh} / ${direct} | web / ${direct} | web / ${viaSsh} |`);
  p(`|---|${names.map(() => '---:').join('|')}|---:|---:|---:|`);
  const row = (title, key, fmt, diff) => {
    const vals = names.map((n) => fmt(figures[n][key]));
    const r = (a, b) => (diff ? (a[key] != null && b[key] != null ? `${a[key] - b[key] >= 0 ? '+' : ''}${(a[key] - b[key]).toFixed(0)} µs` : '–') : rx(ratio(a[key], b[key])));
    p(`| ${title} | ${vals.join(' | ')} | ${r(s, d)} | ${w ? r(w, d) : '–'} | ${w ? r(w, s) : '–'} |`);
  };
  row('echo p50 µs', 'echo_p50_us', f0, true);
  row('echo p99 µs', 'echo_p99_us', f0, false);
  row('PTY output MB/s', 'pty_MBps', f2, false);
  p();
  p('Per rep:');
  p();
  p(`| figure | ${names.map(col).join(' | ')} |`);
  p(`|---|${names.map(() => '---').join('|')}|`);
  for (const [title, key, fmt] of [
    ['echo p50 µs', 'echo_p50_us_runs', f0],
    ['echo p99 µs', 'echo_p99_us_runs', f0],
    ['PTY MB/s', 'pty_MBps_runs', f2],
    ['PTY bytes per read / frame', 'pty_mean_read_B_runs', f0],
  ]) {
    p(`| ${title} | ${names.map((n) => figures[n][key].map(fmt).join(', ') || '–').join(' | ')} |`);
  }
  if (w) {
    p();
    p('Issue 7 targets for the web terminal (against ssh direct):');
    p();
    const verdict = (ok) => (ok == null ? 'not measured' : ok ? 'met' : '**not met**');
    const pty = ratio(w.pty_MBps, d.pty_MBps);
    p(`- PTY output ≥ 0.9× direct: ${rx(pty)}: ${verdict(pty == null ? null : pty >= 0.9)}`);
    const dp50 = w.echo_p50_us != null && d.echo_p50_us != null ? w.echo_p50_us - d.echo_p50_us : null;
    p(`- echo p50 ≤ direct + 100 µs: ${dp50 == null ? '–' : `+${dp50.toFixed(0)} µs`}: ${verdict(dp50 == null ? null : dp50 <= 100)}`);
    p(`- echo p99 ≤ direct p99: ${f0(w.echo_p99_us)} vs ${f0(d.echo_p99_us)} µs: ${verdict(w.echo_p99_us == null ? null : w.echo_p99_us <= d.echo_p99_us)}`);
  }
  const errors = names.flatMap((n) => figures[n].errors.map((e) => `${n}: ${e}`));
  if (errors.length) {
    p();
    p('Failed measurements (left out of the medians):');
    for (const e of errors) p(`- ${e}`);
  }
  p();
  p('Machine:');
  for (const [k, v] of Object.entries(meta)) p(`- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${lines.join('\n')}\n`;
}

async function run(cfg) {
  const paths = [...Object.keys(cfg.ssh), 'web'];
  if (cfg.ws_node) paths.push('ws-node');
  const samples = Object.fromEntries(paths.map((n) => [n, { echo: [], pty: [], errors: [] }]));
  const meta = { ...(cfg.machine ?? {}) };
  const browser = await launchBrowser();
  try {
    meta.chromium = browser.version();
    const errors = [];
    const page = await newPage(browser, errors);
    await redeemInvite(page, cfg);
    // A blank page of the gateway's origin (so the terminal's Origin and cookie are the
    // gateway's), cross-origin isolated so that performance.now() has 5 µs resolution
    // rather than 100 µs.
    const blank = new URL('/__bench_web_terminal', cfg.base_url).href;
    await page.route(blank, (route) =>
      route.fulfill({
        status: 200,
        contentType: 'text/html',
        headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
        body: '<!doctype html><title>web terminal bench</title>',
      }),
    );
    // A fulfilled page has no address of its own, so Chromium counts it as public and
    // would block its WebSocket to 127.0.0.1 (Local Network Access): allow that origin.
    await page.context().grantPermissions(['local-network-access'], { origin: new URL(cfg.base_url).origin });
    await step('open the blank bench page', () => page.goto(blank));
    meta.page_cross_origin_isolated = await page.evaluate(() => self.crossOriginIsolated);
    meta.page_timer_step_us = await page.evaluate(() => {
      let min = Infinity;
      let last = performance.now();
      for (let i = 0; i < 200000; i++) {
        const t = performance.now();
        if (t > last) {
          min = Math.min(min, t - last);
          last = t;
        }
      }
      return Math.round(min * 1000 * 10) / 10;
    });
    log(`page: crossOriginIsolated=${meta.page_cross_origin_isolated}, timer step ${meta.page_timer_step_us} µs`);
    const wsUrl = new URL(`/api/terminal?node=${encodeURIComponent(cfg.node)}&login=${encodeURIComponent(cfg.login)}&cols=120&rows=40`, cfg.base_url);
    wsUrl.protocol = 'wss:';
    let cookie = '';
    if (cfg.ws_node) {
      const jar = await page.context().cookies(cfg.base_url);
      cookie = jar.map((c) => `${c.name}=${c.value}`).join('; ');
    }
    const origin = new URL(cfg.base_url).origin;
    const pageArgs = {
      url: wsUrl.href,
      echoCmd: ECHO_CMD,
      ptyCmd: ptyCmd(cfg.size),
      size: cfg.size,
      keys: cfg.keys,
      warmup: cfg.warmup,
      gapMs: cfg.key_gap_ms,
      readyMs: READY_MS,
      keyMs: KEY_MS,
      scannerSrc: makePtyScanner.toString(),
    };
    const measure = async (path, figure) => {
      if (path === 'web') return page.evaluate(inPage, { ...pageArgs, figure });
      if (path === 'ws-node') return nodeWs(wsUrl.href, cookie, origin, { ...pageArgs, figure });
      return figure === 'echo' ? sshEcho(cfg.ssh[path], cfg) : sshPty(cfg.ssh[path], cfg);
    };
    for (let rep = 0; rep < cfg.reps; rep++) {
      const order = paths.map((_, i) => paths[(i + rep) % paths.length]);
      for (const figure of ['echo', 'pty']) {
        for (const path of order) {
          const started = Date.now();
          try {
            const r = await measure(path, figure);
            if (figure === 'echo') {
              samples[path].echo.push(r.lat);
              log(`rep ${rep + 1} ${figure} ${path}: p50 ${pctl(r.lat, 50).toFixed(0)} µs, p99 ${pctl(r.lat, 99).toFixed(0)} µs`);
            } else {
              samples[path].pty.push(r);
              log(`rep ${rep + 1} ${figure} ${path}: ${r.bytes} B in ${r.ms.toFixed(0)} ms = ${(r.bytes / 1e3 / r.ms).toFixed(2)} MB/s, ${r.chunks} reads/frames`);
            }
          } catch (error) {
            const message = `rep ${rep + 1} ${figure}: ${error instanceof Error ? error.message : error}`;
            samples[path].errors.push(message);
            log(`FAILED ${path} ${message} (after ${Date.now() - started} ms)`);
          }
          await new Promise((resolve) => setTimeout(resolve, 300)); // let the last session wind down
        }
      }
    }
    if (errors.length) meta.page_errors = errors;
  } finally {
    await browser.close();
  }
  const figures = summarize(samples);
  const settings = { reps: cfg.reps, keys: cfg.keys, warmup: cfg.warmup, key_gap_ms: cfg.key_gap_ms, size: cfg.size, echo_cmd: ECHO_CMD, pty_cmd: ptyCmd(cfg.size) };
  const json = { settings, machine: meta, figures, samples_echo_us: Object.fromEntries(paths.map((n) => [n, samples[n].echo])) };
  const text = report(cfg, figures, meta);
  if (cfg.out_json) writeFileSync(cfg.out_json, `${JSON.stringify(json, null, 1)}\n`);
  if (cfg.out_txt) writeFileSync(cfg.out_txt, text);
  process.stdout.write(text);
  const failed = paths.filter((n) => figures[n].echo_p50_us == null || figures[n].pty_MBps == null);
  return failed;
}

let cfg;
try {
  cfg = JSON.parse(process.env.CONFIG ?? '');
} catch {
  log('CONFIG must hold the run as a JSON object');
  process.exit(2);
}
try {
  const failed = await run(cfg);
  if (failed.length) {
    log(`no figure for: ${failed.join(', ')}`);
    process.exit(1);
  }
  // Closed WebSockets and stopped ssh clients may still hold handles: do not wait for them.
  process.exit(0);
} catch (error) {
  log(`FAILED ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
