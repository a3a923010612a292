#!/bin/sh
# portcullis agent installer, served by the gateway itself: the node needs no package
# repository, only a route (or an HTTP proxy) to the gateway.
#   curl -fsSL --cacert gateway.pem https://GATEWAY/install.sh | sh -s -- --token TOKEN [--proxy URL]
set -eu
GATEWAY="@GATEWAY@"
BINARY_SHA256="@SHA256@"
TOKEN="" PROXY="${HTTPS_PROXY:-${https_proxy:-}}" NAME="" LABELS="" PREFIX="/usr/local" DATA_DIR="/var/lib/portcullis-agent" FOREGROUND=""
while [ $# -gt 0 ]; do
  case "$1" in
    --token) TOKEN="$2"; shift 2 ;;
    --proxy) PROXY="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    --labels) LABELS="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --data-dir) DATA_DIR="$2"; shift 2 ;;
    --foreground) FOREGROUND=1; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$TOKEN" ] || { echo "usage: install.sh --token TOKEN [--proxy URL] [--name NAME] [--labels k=v,...] [--prefix DIR] [--data-dir DIR] [--foreground]" >&2; exit 2; }
BIN="$PREFIX/bin/portcullis"
TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT
# This script came over TLS the caller verified; the binary is checked against the digest inside it.
curl -fsS --insecure ${PROXY:+--proxy "$PROXY"} -o "$TMP" "https://$GATEWAY/download/portcullis"
GOT="$(sha256sum "$TMP" | cut -d' ' -f1)"
[ "$GOT" = "$BINARY_SHA256" ] || { echo "install.sh: the downloaded binary does not match ($GOT)" >&2; exit 1; }
mkdir -p "$PREFIX/bin"
install -m 0755 "$TMP" "$BIN"
# The token travels in the environment, not on a command line other users can read.
export PORTCULLIS_JOIN_TOKEN="$TOKEN"
set -- agent --gateway "$GATEWAY" --data-dir "$DATA_DIR"
# A proxy URL may hold a password: it too travels in the environment.
[ -n "$PROXY" ] && export HTTPS_PROXY="$PROXY"
[ -n "$NAME" ] && set -- "$@" --name "$NAME"
[ -n "$LABELS" ] && set -- "$@" --labels "$LABELS"
if [ -z "$FOREGROUND" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  umask 077
  printf 'PORTCULLIS_JOIN_TOKEN=%s\n' "$TOKEN" > /etc/portcullis-agent.env
  [ -n "$PROXY" ] && printf 'HTTPS_PROXY=%s\n' "$PROXY" >> /etc/portcullis-agent.env
  umask 022
  cat > /etc/systemd/system/portcullis-agent.service <<UNIT
[Unit]
Description=portcullis agent
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/portcullis-agent.env
ExecStart=$BIN $*
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now portcullis-agent.service
  echo "portcullis agent installed and started (systemctl status portcullis-agent)"
else
  echo "portcullis agent installed at $BIN; running it in the foreground"
  exec "$BIN" "$@"
fi
