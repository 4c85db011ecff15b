#!/usr/bin/env bash
# Installs the real Backstage catalog backend used by backstage/integration_test.go:
# `npm ci` from the committed package-lock.json, with better-sqlite3 compiled
# from source against the system Node headers (needs python3, make and g++).
# Idempotent: skips the install when node_modules was made from this very lock
# file by this very Node version.
set -euo pipefail
cd "$(dirname "$0")"

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup.sh: $tool is not installed" >&2; exit 1; }
done

# The lock file must only name packages from the configured npm registry: no
# resolved URLs (npm then uses the configured registry), no git, http, file or
# github: specs.
if grep -nE '"resolved"|"(version|from)": *"(git|git\+[a-z]+|https?|file|github|link):' package-lock.json; then
  echo "setup.sh: package-lock.json names a source other than the configured npm registry (lines above)" >&2
  exit 1
fi

want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"
stamp=node_modules/.backgate-setup
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$addon" ]; then
  echo "setup.sh: node_modules is up to date with package-lock.json"
  exit 0
fi

export npm_config_nodedir="${npm_config_nodedir:-/usr}"
start=$SECONDS
rm -f "$stamp"
npm ci --no-audit --no-fund --loglevel=error
if [ ! -f "$addon" ]; then
  echo "setup.sh: better-sqlite3 was not built by npm ci; building it now"
  npm rebuild better-sqlite3 --loglevel=error
fi
[ -f "$addon" ] || { echo "setup.sh: better-sqlite3 native addon missing after the build" >&2; exit 1; }
node -e "require('better-sqlite3')(':memory:').close()"
echo "$want" > "$stamp"
echo "setup.sh: npm ci done in $((SECONDS - start)) s"
