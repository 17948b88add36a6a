#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios (@modelcontextprotocol/conformance, pinned in
# package-lock.json) against an MCP server's streamable HTTP endpoint.
#
#   interop/conformance.sh URL [options of `conformance server`, e.g. --scenario NAME, -o DIR]
#   interop/conformance.sh --list          # the server scenarios, one `  - NAME [...]` per line
#
# It runs every scenario that `--list` shows (`--suite all`: the default "active" suite leaves out
# the pending json-schema-2020-12 and server-sse-polling); a `--suite` or `--scenario` given after
# URL takes precedence.
# The suite needs Node 22; it runs under interop/node22's pinned binary (install both with
# `(cd interop && npm ci) && (cd interop/node22 && npm ci)`), or under $NODE22 if set, or under
# the `node` on PATH if that is 22 or newer.
# If MCP_BEARER_TOKEN is set, every request the suite makes carries
# `Authorization: Bearer $MCP_BEARER_TOKEN` (see bearer-preload.mjs).
# The console ends with `Total: N passed, M failed`. Exits with the suite's code: 0 only if no
# check failed. Exits 2 if the suite or Node 22 is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"

if [ "$#" -lt 1 ]; then
  echo "usage: $0 URL [conformance server options] | $0 --list" >&2
  exit 2
fi
if [ ! -f "$suite" ]; then
  echo "conformance.sh: the suite is not installed: run (cd interop && npm ci)" >&2
  exit 2
fi

node_major() {
  "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

node="${NODE22:-$here/node22/node_modules/.bin/node}"
if [ ! -x "$node" ]; then
  if [ -z "${NODE22:-}" ] && command -v node >/dev/null && [ "$(node_major node)" -ge 22 ]; then
    node="$(command -v node)"
  else
    echo "conformance.sh: no Node 22 at $node: run (cd interop/node22 && npm ci)" >&2
    exit 2
  fi
fi
if [ "$(node_major "$node")" -lt 22 ]; then
  echo "conformance.sh: $node is Node $(node_major "$node"); the suite needs 22 or newer" >&2
  exit 2
fi

if [ "$1" = "--list" ]; then
  exec "$node" "$suite" list --server
fi

url="$1"
shift
preload=()
if [ -n "${MCP_BEARER_TOKEN:-}" ]; then
  preload=(--import "$here/bearer-preload.mjs")
fi
exec "$node" "${preload[@]}" "$suite" server --url "$url" --suite all "$@"
