# shellcheck shell=bash
# Sourced by bench/run and bench/profile: a throwaway lab on 127.0.0.1.
#
#   node   lib/sshd-node, login `bench`, trusting the gateway's user CA
#   jump   lib/sshd-node with forwarding, for the OpenSSH `ssh -J` baseline
#   gw     target/release/portcullis with a temp data dir on an ephemeral port,
#          node `bench-node` (bench=yes), users `vendor` (role bench-rec, record = true)
#          and `ops` (role bench-norec, record = false), both allowed login `bench`
#
# The caller sets ROOT, BENCH, WORK, OUT and calls lab_start; lab_stop (from its
# EXIT trap) stops exactly the processes started here, by pid.
#
# Knobs: BENCH_KEX (curve25519-sha256; "default" = OpenSSH's own list),
#        BENCH_CIPHERS (unset = OpenSSH's own list; e.g. aes256-gcm@openssh.com pins
#        every OpenSSH client, the user hop included, to that cipher),
#        REC_MAX_BYTES (268435456: the 64 MiB default cap would stop recording
#        the 91.8 MB PTY figure part way through, hiding its cost),
#        PORTCULLIS (path of the binary), RUST_LOG for the gateway.

PORTCULLIS=${PORTCULLIS:-$ROOT/target/release/portcullis}
BENCH_KEX=${BENCH_KEX:-curve25519-sha256}
REC_MAX_BYTES=${REC_MAX_BYTES:-268435456}
GW_PID=""
PROBE_PID=""

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ctl() { "$PORTCULLIS" ctl --data-dir "$GW_DATA" "$@"; }

# True while $1 is a live (non-zombie) process whose cmdline contains $2.
pid_is() {
  local st
  st=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] || return 1
  { tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$2"
}

stop_pid() {   # stop_pid PID CMDLINE-FRAGMENT NAME: TERM, bounded wait, KILL
  local pid=$1 what=$2 name=$3 i
  [ -n "$pid" ] || return 0
  pid_is "$pid" "$what" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do pid_is "$pid" "$what" || break; sleep 0.1; done
  if pid_is "$pid" "$what"; then kill -KILL "$pid" 2>/dev/null || true; log "$name (pid $pid) killed"; fi
  wait "$pid" 2>/dev/null || true
}

lab_stop() {
  stop_pid "$PROBE_PID" "$WORK/probe/sshd_config" "probe sshd"
  stop_pid "$GW_PID" "$WORK/portcullis.toml" "gateway"
  [ -f "$WORK/node/sshd.pid" ] && "$YARD/lib/sshd-node" stop "$WORK/node" >/dev/null 2>&1 || true
  [ -f "$WORK/jump/sshd.pid" ] && "$YARD/lib/sshd-node" stop "$WORK/jump" >/dev/null 2>&1 || true
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    cp "$WORK/gw.stderr" "$OUT/gateway.log" 2>/dev/null || true
    cp "$WORK/node/sshd.log" "$OUT/node-sshd.log" 2>/dev/null || true
    cp "$WORK/jump/sshd.log" "$OUT/jump-sshd.log" 2>/dev/null || true
    cp "$WORK/probe/sshd.log" "$OUT/probe-sshd.log" 2>/dev/null || true
  fi
  if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}

ssh_cfg() {   # ssh_cfg FILE KEY [KEX]
  {
    echo "Host *"
    echo "  IdentityFile $2"
    echo "  IdentitiesOnly yes"
    echo "  StrictHostKeyChecking no"
    echo "  UserKnownHostsFile /dev/null"
    echo "  LogLevel ERROR"
    echo "  BatchMode yes"
    echo "  ControlMaster no"
    echo "  ControlPath none"
    if [ -n "${3:-}" ] && [ "$3" != default ]; then echo "  KexAlgorithms $3"; fi
    if [ -n "${BENCH_CIPHERS:-}" ]; then echo "  Ciphers $BENCH_CIPHERS"; fi
  } > "$1"
}

gw_start() {
  cat > "$WORK/portcullis.toml" <<TOML
data_dir = "$GW_DATA"
[listen]
addr = "${GW_ADDR:-127.0.0.1:0}"
# Every benchmark client connects from 127.0.0.1: lift the per-source cap (default 256).
max_connections_per_source = ${GW_PER_SOURCE:-8192}
max_connections = ${GW_MAX_CONNECTIONS:-8192}
[recordings]
max_bytes = $REC_MAX_BYTES
TOML
  "$PORTCULLIS" start --config "$WORK/portcullis.toml" > "$WORK/gw.stdout" 2> "$WORK/gw.stderr" &
  GW_PID=$!
  local i addr=""
  for i in $(seq 1 600); do
    addr=$(sed -n 's/^portcullis listening on //p' "$WORK/gw.stdout" | tail -1)
    [ -n "$addr" ] && break
    pid_is "$GW_PID" "$WORK/portcullis.toml" || die "gateway exited: $(tail -5 "$WORK/gw.stderr")"
    sleep 0.1
  done
  [ -n "$addr" ] || die "gateway did not print its address within 60 s"
  GW_PORT=${addr##*:}
}

lab_start() {
  [ "$(id -u)" = 0 ] || die "run as root (sshd needs privilege separation; the node login is the user 'bench')"
  [ -x "$PORTCULLIS" ] || die "$PORTCULLIS not built (cargo build --release -p portcullis)"
  chmod 755 "$WORK"   # the node login must reach authorized_keys and the CA file inside it
  GW_DATA=$WORK/gw-data
  NODE_DIR=$WORK/node
  JUMP_DIR=$WORK/jump
  mkdir -p "$WORK/keys"
  # the gateway holds 2-3 fds per session; 1000 sessions need more than 1024
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  gw_start
  log "gateway pid $GW_PID on 127.0.0.1:$GW_PORT"
  ctl ca export --kind user > "$WORK/user_ca.pub"
  "$YARD/lib/sshd-node" start --dir "$NODE_DIR" --user bench --trusted-ca "$WORK/user_ca.pub" > "$WORK/node.env"
  NODE_PORT=$(cat "$NODE_DIR/port")
  "$YARD/lib/sshd-node" start --dir "$JUMP_DIR" --user bench --forwarding yes \
      --authorize "$NODE_DIR/client_ed25519.pub" > "$WORK/jump.env"
  JUMP_PORT=$(cat "$JUMP_DIR/port")
  log "node sshd on 127.0.0.1:$NODE_PORT, jump sshd on 127.0.0.1:$JUMP_PORT"

  cat > "$WORK/roles.toml" <<'TOML'
[[role]]
name = "bench-rec"
nodes = { bench = "yes" }
logins = ["bench"]
allow = ["shell", "exec", "file_transfer"]
record = true
source_cidrs = ["127.0.0.0/8"]

[[role]]
name = "bench-norec"
nodes = { bench = "yes" }
logins = ["bench"]
allow = ["shell", "exec", "file_transfer"]
record = false
source_cidrs = ["127.0.0.0/8"]
TOML
  ctl roles apply "$WORK/roles.toml" >/dev/null
  ctl nodes add bench-node --addr "127.0.0.1:$NODE_PORT" --labels bench=yes >/dev/null
  local who role
  for who in vendor:bench-rec ops:bench-norec; do
    role=${who#*:}; who=${who%%:*}
    ssh-keygen -q -t ed25519 -N '' -C "bench-$who" -f "$WORK/keys/$who"
    ctl users add "$who" --roles "$role" >/dev/null
    ctl users add-key "$who" --key-file "$WORK/keys/$who.pub" >/dev/null
  done

  CFG_DIRECT=$WORK/ssh_config_direct
  CFG_VENDOR=$WORK/ssh_config_vendor
  CFG_OPS=$WORK/ssh_config_ops
  ssh_cfg "$CFG_DIRECT" "$NODE_DIR/client_ed25519" "$BENCH_KEX"
  ssh_cfg "$CFG_VENDOR" "$WORK/keys/vendor" "$BENCH_KEX"
  ssh_cfg "$CFG_OPS" "$WORK/keys/ops" "$BENCH_KEX"
  DIRECT="ssh -F $CFG_DIRECT -p $NODE_PORT bench@127.0.0.1"
  JUMP="ssh -F $CFG_DIRECT -J bench@127.0.0.1:$JUMP_PORT -p $NODE_PORT bench@127.0.0.1"
  PC="ssh -F $CFG_VENDOR -p $GW_PORT bench@bench-node@127.0.0.1"
  PCU="ssh -F $CFG_OPS -p $GW_PORT bench@bench-node@127.0.0.1"

  # first contact pins the node's host key; every path must work before measuring
  local name prefix
  for name in DIRECT JUMP PC PCU; do
    prefix=${!name}
    # shellcheck disable=SC2086
    timeout 60 $prefix 'echo ok' 2>"$WORK/check.err" | grep -qx ok \
      || die "$name does not work: $prefix: $(tail -3 "$WORK/check.err")"
  done
}

# Which key exchange and cipher each hop negotiates (one `ssh -v` per client hop;
# the gateway->node hop from a one-shot `sshd -d` copy of the node at debug level).
kex_report() {
  local f=$1
  {
    echo "# client hops (ssh -v), KexAlgorithms pin: $BENCH_KEX"
    local name prefix
    for name in DIRECT JUMP PC PCU; do
      prefix=${!name}
      # shellcheck disable=SC2086
      echo "$name: $(timeout 60 ${prefix/ssh /ssh -v } true 2>&1 | grep -E 'kex: algorithm:|kex: server->client cipher:' \
        | tr -d '\r' | sed 's/^debug1: //' | tr '\n' ';')"
    done
    mkdir -p "$WORK/probe"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed -e "s/^Port .*/Port $port/" -e "s#^PidFile .*#PidFile $WORK/probe/sshd.pid#" \
        "$NODE_DIR/sshd_config" > "$WORK/probe/sshd_config"
    # -d: foreground, one connection, debug1 log (sshd's kex lines are debug1)
    /usr/sbin/sshd -d -f "$WORK/probe/sshd_config" -E "$WORK/probe/sshd.log" &
    PROBE_PID=$!
    local i
    for i in $(seq 1 50); do   # a connection would use up -d's one session: read its log
      grep -q 'Server listening' "$WORK/probe/sshd.log" 2>/dev/null && break
      sleep 0.1
    done
    ctl nodes add kex-probe --addr "127.0.0.1:$port" --labels bench=yes >/dev/null
    timeout 60 ssh -F "$CFG_VENDOR" -p "$GW_PORT" bench@kex-probe@127.0.0.1 true 2>/dev/null || echo "(probe session failed)"
    echo "# gateway -> node hop (node sshd debug log)"
    echo "GATEWAY->NODE: $(grep -E 'kex: algorithm:|kex: client->server cipher:|kex: server->client cipher:|Remote protocol version|Accepted publickey' \
        "$WORK/probe/sshd.log" | tr -d '\r' | sed 's/^debug1: //' | tr '\n' ';')"
    stop_pid "$PROBE_PID" "$WORK/probe/sshd_config" "probe sshd"
    PROBE_PID=""
    ctl nodes rm kex-probe >/dev/null 2>&1 || true
  } > "$f"
}

gw_mem() {   # one JSON object: the gateway's RSS/PSS/threads now
  python3 - "$GW_PID" <<'PY'
import json, sys
pid = sys.argv[1]
out = {"pid": int(pid)}
for line in open("/proc/%s/status" % pid):
    k, _, v = line.partition(":")
    if k in ("VmRSS", "VmHWM", "Threads", "RssAnon", "RssFile"):
        out[k] = int(v.split()[0])
for line in open("/proc/%s/smaps_rollup" % pid):
    k, _, v = line.partition(":")
    if k in ("Pss", "Pss_Anon"):
        out[k] = int(v.split()[0])
st = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
out["cpu_s"] = (int(st[11]) + int(st[12])) / 100.0
print(json.dumps(out))
PY
}
