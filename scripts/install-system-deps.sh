#!/usr/bin/env bash
# System packages the test suite needs (Debian): Prometheus + promtool and the Pushgateway, for
# the observability tests. kubectl is expected on PATH (the e2e tests drive it).
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's package starts services on install where an init system runs; the tests start their own.
for service in prometheus prometheus-pushgateway prometheus-node-exporter; do
  pkill -x "$service" 2>/dev/null || true
done
command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl not on PATH; e2e tests will be skipped" >&2
exit 0
