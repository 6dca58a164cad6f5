#!/usr/bin/env bash
# Installs the system packages the tests need, when they are missing:
# PostgreSQL's server binaries (initdb, pg_ctl), Debian's chromium, and node with npm (the npm
# SDK's test apps; the SDKs themselves are installed by the tests, into a cache).
set -euo pipefail
need=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
if ! command -v node >/dev/null 2>&1; then
  need+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
  need+=(npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing ${need[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
