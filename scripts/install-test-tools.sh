#!/usr/bin/env bash
# Installs the Debian tools the metrics and dashboard tests drive: promtool (package prometheus) checks
# the /metrics exposition, Chromium renders the queue dashboard. Idempotent and quick when both exist;
# it never downloads a browser of its own (the tests point playwright-core at Debian's Chromium).
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-tools: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "install-test-tools: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# The prometheus package would start a server as a service; only its promtool is wanted here, so
# policy-rc.d keeps services from starting during the install.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  added_policy=1
fi
trap 'if [ "$added_policy" -eq 1 ]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
