#!/usr/bin/env bash
# Installs what building and testing portcullis needs, idempotently, on Debian.
# Usage: scripts/install-deps.sh [run|test]
set -euo pipefail
# iproute2 and tinyproxy: the agent tests' isolated node network (ip netns, ss -K) and its proxy.
# chromium: the browser tests (driven by playwright-core from web/); nginx: the reverse-proxy test.
want=(openssh-client openssh-server openssl curl asciinema tmux procps iproute2 tinyproxy chromium nginx)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# sshd refuses to start without its privilege-separation directory.
if [ ! -d /run/sshd ]; then
  if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; else sudo mkdir -p /run/sshd; fi
fi
