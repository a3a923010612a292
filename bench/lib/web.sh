# shellcheck shell=bash
# Sourced by bench/web-terminal and bench/run (WEB=1): the web terminal next to the SSH
# paths, in the lab lib/setup.sh started (lab_start must have run).
#
#   web_terminal_run OUTDIR  -> OUTDIR/web-terminal.txt, web-terminal.json, web-terminal.log
#
# A web user `webvendor` (role bench-rec: recorded, like the ssh `vendor`) is made with
# `ctl users add` and redeemed through the invite page by bench/web_terminal.mjs, which
# then measures, in one interleaved run: ssh direct, ssh via portcullis (vendor), the
# browser's terminal WebSocket, and (WS_NODE=1) the same WebSocket from Node without a
# browser. Knobs: REPS (3), SIZE (64M: PTY output per rep), KEYS (500), WARMUP (50),
# KEY_GAP_MS (10, as ssh-bench), WS_NODE (1), WEB_TIMEOUT (seconds; from the sizes),
# SMOKE=1 (1 rep, 1 MiB, 20 keys: under a minute).

web_terminal_run() {
  local out=$1 reps size keys warmup gap ws_node invite password cfg limit node_args=() rc=0
  reps=${REPS:-3}; size=${SIZE:-64M}; keys=${KEYS:-500}; warmup=${WARMUP:-50}; gap=${KEY_GAP_MS:-10}
  ws_node=${WS_NODE:-1}
  if [ -n "${SMOKE:-}" ]; then
    reps=1; size=${SMOKE_SIZE:-1M}; keys=20; warmup=5; gap=2
  fi
  size=$(numfmt --from=iec "$size") || die "SIZE must be a byte count (1048576, 32M, 64M)"
  command -v node >/dev/null || die "web terminal: node not found"
  [ -x /usr/bin/chromium ] || die "web terminal: no /usr/bin/chromium (scripts/install-deps.sh)"
  [ -d "$ROOT/web/node_modules/playwright-core" ] || die "web terminal: no web/node_modules/playwright-core: run \`make ui\`"
  if [ "$ws_node" = 1 ] && ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
    if node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
      node_args=(--experimental-websocket)
    else
      log "web terminal: this node has no WebSocket; skipping the Node-client path"
      ws_node=0
    fi
  fi

  [ -n "${BENCH_REV:-}" ] || BENCH_REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- crates web/src 2>/dev/null || echo ' + uncommitted changes')"
  export BENCH_REV
  invite=$(ctl users add webvendor --roles bench-rec --ttl 2h)
  invite="/invite/${invite##*/invite/}"
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  # every path must fit in the bound: sessions, keystrokes at >= 20 ms each, PTY at >= 0.5 MB/s
  limit=${WEB_TIMEOUT:-$((120 + reps * 4 * (20 + (keys + warmup) * (gap + 20) / 1000 + size * 2 / 1000000)))}

  cfg=$(python3 - "$GW_PORT" "$NODE_PORT" "$CFG_DIRECT" "$CFG_VENDOR" "$invite" "$password" \
          "$reps" "$size" "$keys" "$warmup" "$gap" "$ws_node" "$out" "$PORTCULLIS" <<'PY'
import json, os, subprocess, sys, time
gw, node, cfg_direct, cfg_vendor, invite, password, reps, size, keys, warmup, gap, ws_node, out, binary = sys.argv[1:]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip() \
            or subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stderr.strip()
    except Exception as e:
        return "?"
machine = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "nproc": os.cpu_count(),
    "cpu": sh("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1"),
    "kernel": sh("uname -sr"),
    "openssh": sh("ssh -V"),
    "node": sh("node -v"),
    "binary": binary,
    "portcullis": os.environ.get("BENCH_REV", ""),
    "load_before": sh("cat /proc/loadavg"),
    "cargo_or_rustc_running_before": sh("pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null && echo yes || echo no"),
}
print(json.dumps({
    "base_url": "https://127.0.0.1:%s" % gw,
    "invite_path": invite, "user": "webvendor", "password": password,
    "node": "bench-node", "login": "bench",
    "ssh": {
        "direct": ["ssh", "-F", cfg_direct, "-p", node, "bench@127.0.0.1"],
        "portcullis": ["ssh", "-F", cfg_vendor, "-p", gw, "bench@bench-node@127.0.0.1"],
    },
    "reps": int(reps), "size": int(size), "keys": int(keys), "warmup": int(warmup),
    "key_gap_ms": int(gap), "ws_node": ws_node == "1",
    "out_json": os.path.join(out, "web-terminal.json"), "out_txt": os.path.join(out, "web-terminal.txt"),
    "machine": machine,
}))
PY
)
  log "web terminal: ssh direct, ssh via portcullis, web$([ "$ws_node" = 1 ] && echo ', ws from node'): $reps reps, $size B PTY output, $keys keys (bound ${limit} s)"
  CONFIG=$cfg timeout --kill-after=10 "$limit" node "${node_args[@]}" "$BENCH/web_terminal.mjs" \
      2> >(tee "$out/web-terminal.log" >&2) || rc=$?
  if [ -f "$out/web-terminal.txt" ]; then
    echo "- load_after: $(cat /proc/loadavg)" >> "$out/web-terminal.txt"
  fi
  [ "$rc" = 0 ] || log "web terminal: bench/web_terminal.mjs failed (rc $rc; $out/web-terminal.log)"
  return "$rc"
}
