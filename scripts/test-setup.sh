#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it is missing, and checks Redis.
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-setup: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "test-setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# promtool and Chromium for the metrics and dashboard tests.
bash "$(dirname "$0")/install-test-tools.sh"
# Prometheus and Alertmanager for the alerting end-to-end test.
bash "$(dirname "$0")/install-alerting.sh"

redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
if ! redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
  echo "test-setup: no Redis answers at $redis_url; start one (redis-server --port 6379) or set REDIS_URL" >&2
  exit 1
fi
