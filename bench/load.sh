#!/usr/bin/env bash
# Gateway load benchmark: a stateless MCP 2026-07-28 `tools/call` of the demo server's `echo`
# over HTTP, sent directly to the demo server, through a pass-through proxy without any auth
# (`mcp-guard demo passthrough`: the same HTTP server, client, runtime and allocator as the
# gateway, so the difference is the guard's own work) and through mcp-guard with authentication
# on (HS256 bearer token, RBAC, audit log to a file), in the same run. The gateway runs twice:
# in front of the demo server over HTTP (`gateway`), and in front of the demo server as its own
# stdio child processes (`gateway-stdio`, the default configuration's upstream, `mcp-guard demo
# stdio`). When nginx is installed, also through nginx as a plain reverse proxy, a reference for
# what any proxy costs here, and to nginx answering the echo itself (`nginx-static`), the cost of
# one HTTP exchange with no upstream. See docs/PERFORMANCE.md, "Gateway load benchmark".
#
# Usage:
#   bench/load.sh [--duration SECONDS] [--bin PATH]   latency (1 connection) and throughput
#                                                      (16 connections), direct and gateway
#   bench/load.sh --quick [--bin PATH]                 the same with 2 s runs and any binary
#                                                      (CI: keeps the script working)
#   bench/load.sh --soak MINUTES [--bin PATH]          moderate load through one gateway only;
#                                                      RSS, sessions, children and errors
#   bench/load.sh --instructions [--bin PATH]          instructions per request of the
#                                                      passthrough and the gateway (valgrind)
# Options:
#   --duration SECONDS    each measured run (default 10; 2 with --quick)
#   --rounds N            repeat the set of runs N times, interleaved, and report each figure's
#                         median over the rounds (default 1); this VM's speed drifts by tens of
#                         percent within minutes, and interleaving spreads that over every proxy
#   --bin PATH            the mcp-guard binary (default: $MCP_GUARD_BIN, else
#                         target/release/mcp-guard, built if missing; with --quick also
#                         target/debug/mcp-guard)
#   --soak-warmup SECONDS load before the soak's first RSS reading (default 30; 5 with --quick)
#   --soak-upstream http|stdio
#                         the gateway the soak loads: in front of the demo server over HTTP
#                         (default), or in front of its stdio children, where a leaked or
#                         orphaned child would show
#   --no-nodelay-shim     do not set TCP_NODELAY on the demo server's sockets (see below)
#   --no-nginx            skip the nginx reference runs (they run when `nginx` is on PATH, never
#                         with --quick or --soak)
#   --keep                keep the temporary directory (configuration, logs, wrk output)
#
# --instructions runs the passthrough and the gateway under valgrind's callgrind, counting
# instructions only while wrk sends requests over 1 connection, and reports instructions per
# request: a figure that, unlike CPU time on this VM, does not drift from run to run (it moves by
# under 1%), so a change of a few percent in the guard's own work can be seen. It counts work,
# not time: cache misses and system calls are not in it, and valgrind runs SHA-256 without the
# SHA extensions, so hashing counts for more than it costs natively. Installs the Debian
# package `valgrind` if missing. Not with --soak; nginx is not run.
#
# Placement on a machine with 2 or more CPUs: wrk on CPU 0; the demo server, the passthrough and
# the gateways on CPU 1 (override with LOAD_WRK_CPUS and LOAD_SERVER_CPUS, taskset lists); the
# stdio gateway's children inherit its CPU. Only one proxy carries load at a time. With fewer
# CPUs nothing is pinned.
#
# The demo server sets TCP_NODELAY since 23ca61e (rmcp writes each SSE answer in two writes, and
# with Nagle on keep-alive connections the second waited for the client's delayed ACK, 40 ms).
# For binaries older than that, the script can still run the demo under a small LD_PRELOAD shim
# (compiled here with cc) that sets TCP_NODELAY on every socket it accepts; `--no-nodelay-shim`
# skips it, as CI does.
#
# Exit status: 0 when every response was a 200 with the echo; 1 otherwise, or when a
# process fails to start. Targets missed are reported, not failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LUA="$ROOT/bench/mcp-call.lua"
COMMAND_LINE="bench/load.sh${*:+ $*}"

DURATION=""
ROUNDS=1
BIN="${MCP_GUARD_BIN:-}"
QUICK=0
SOAK_MIN=""
SOAK_WARMUP=""
SOAK_UPSTREAM=http
INSTRUCTIONS=0
SHIM_WANTED=1
NGINX_WANTED=1
KEEP=0

die() {
  echo "load.sh: error: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="${2:?--duration needs SECONDS}"; shift 2 ;;
    --rounds) ROUNDS="${2:?--rounds needs N}"; shift 2 ;;
    --bin) BIN="${2:?--bin needs PATH}"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --soak) SOAK_MIN="${2:?--soak needs MINUTES}"; shift 2 ;;
    --soak-warmup) SOAK_WARMUP="${2:?--soak-warmup needs SECONDS}"; shift 2 ;;
    --soak-upstream) SOAK_UPSTREAM="${2:?--soak-upstream needs http or stdio}"; shift 2 ;;
    --instructions) INSTRUCTIONS=1; shift ;;
    --no-nodelay-shim) SHIM_WANTED=0; shift ;;
    --no-nginx) NGINX_WANTED=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
if [ -z "$DURATION" ]; then
  if [ "$QUICK" = 1 ]; then DURATION=2; else DURATION=10; fi
fi
is_uint "$DURATION" || die "--duration must be a positive whole number of seconds"
is_uint "$ROUNDS" || die "--rounds must be a positive whole number"
if [ -z "$SOAK_WARMUP" ]; then
  if [ "$QUICK" = 1 ]; then SOAK_WARMUP=5; else SOAK_WARMUP=30; fi
fi
is_uint "$SOAK_WARMUP" || die "--soak-warmup must be a positive whole number of seconds"
case "$SOAK_UPSTREAM" in http | stdio) ;; *) die "--soak-upstream must be http or stdio" ;; esac
if [ -n "$SOAK_MIN" ]; then
  is_uint "$SOAK_MIN" || die "--soak must be a positive whole number of minutes"
  [ "$INSTRUCTIONS" = 0 ] || die "--instructions and --soak do not go together"
fi

# ---------------------------------------------------------------------------------------------
# Tools and binary.

# apt_install COMMAND PACKAGE: installs the Debian package when the command is missing.
apt_install() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "load.sh: $1 is missing; installing the Debian package $2" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "$1 is missing and this is not root: apt-get install -y $2"
    sudo="sudo -n"
  fi
  $sudo apt-get install -y "$2" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y "$2" >/dev/null; } ||
    die "could not install $2"
}
apt_install wrk wrk
if [ "$INSTRUCTIONS" = 1 ]; then
  apt_install valgrind valgrind
  command -v callgrind_control >/dev/null 2>&1 || die "callgrind_control is missing (package valgrind)"
fi
for tool in curl taskset awk; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
if [ -z "$BIN" ]; then
  if [ -x "$TARGET_DIR/release/mcp-guard" ]; then
    BIN="$TARGET_DIR/release/mcp-guard"
  elif [ "$QUICK" = 1 ] && [ -x "$TARGET_DIR/debug/mcp-guard" ]; then
    BIN="$TARGET_DIR/debug/mcp-guard"
  elif [ "$QUICK" = 1 ]; then
    echo "load.sh: building the debug binary" >&2
    (cd "$ROOT" && cargo build -p mcp-guard) >&2
    BIN="$TARGET_DIR/debug/mcp-guard"
  else
    echo "load.sh: building the release binary (takes minutes)" >&2
    (cd "$ROOT" && cargo build --release -p mcp-guard) >&2
    BIN="$TARGET_DIR/release/mcp-guard"
  fi
fi
[ -x "$BIN" ] || die "no executable mcp-guard at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# ---------------------------------------------------------------------------------------------
# Temporary directory, processes, cleanup.

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mcp-guard-load.XXXXXX")
PIDS=()     # long-running processes this script started (demo server, gateway)
BG_PIDS=()  # background wrk and sampler
FAILED=1

stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do  # up to 10 s (the gateway's shutdown grace)
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid"; done
  # The gateway first (it ends its upstream sessions), then the demo server.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [ "$FAILED" = 1 ] || [ "$status" != 0 ]; then
    for f in demo.log gateway.log gateway-stdio.log; do
      if [ -s "$DIR/$f" ]; then
        echo "---- last lines of $f ----" >&2
        tail -n 20 "$DIR/$f" >&2
      fi
    done
  fi
  if [ "$KEEP" = 1 ]; then
    echo "load.sh: kept $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing listens on (bounded number of tries).
USED_PORTS=" "
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
      USED_PORTS="$USED_PORTS$p "
      echo "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}

# Waits (at most $3 seconds) until file $2 contains $1, while process $4 lives.
wait_for_line() {
  local pattern="$1" file="$2" limit="$3" pid="$4" deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before printing '$pattern' (see $file)"
    sleep 0.1
  done
  die "no '$pattern' in $file after ${limit}s"
}

# ---------------------------------------------------------------------------------------------
# Placement.

NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
if [ "$NPROC" -ge 2 ]; then
  WRK_CPUS="${LOAD_WRK_CPUS:-0}"
  SERVER_CPUS="${LOAD_SERVER_CPUS:-1}"
  WRK_PIN=(taskset -c "$WRK_CPUS")
  SERVER_PIN=(taskset -c "$SERVER_CPUS")
  PLACEMENT="wrk on CPU $WRK_CPUS; demo server, passthrough, gateways and the stdio gateway's children on CPU $SERVER_CPUS (taskset)"
else
  WRK_PIN=()
  SERVER_PIN=()
  PLACEMENT="not pinned (nproc = $NPROC)"
fi

# ---------------------------------------------------------------------------------------------
# TCP_NODELAY shim for the demo server (see the header).

SHIM=""
SHIM_NOTE="none: direct runs may include 40 ms Nagle/delayed-ACK stalls"
if [ "$SHIM_WANTED" = 1 ]; then
  if command -v cc >/dev/null 2>&1; then
    cat >"$DIR/nodelay.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static void nodelay(int fd) {
  int one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int f) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
  int fd = real(s, a, l, f);
  nodelay(fd);
  return fd;
}
int accept(int s, struct sockaddr *a, socklen_t *l) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
  int fd = real(s, a, l);
  nodelay(fd);
  return fd;
}
EOF
    cc -shared -fPIC -O2 -o "$DIR/nodelay.so" "$DIR/nodelay.c" -ldl || die "could not build the TCP_NODELAY shim"
    SHIM="$DIR/nodelay.so"
    SHIM_NOTE="TCP_NODELAY set on the demo server's accepted sockets (LD_PRELOAD shim)"
  else
    echo "load.sh: warning: no cc, so no TCP_NODELAY shim; direct numbers may include 40 ms Nagle stalls" >&2
  fi
fi

# ---------------------------------------------------------------------------------------------
# Demo server and gateway.

UP_PORT=$(free_port)
GW_PORT=$(free_port)
METRICS_PORT=$(free_port)
GWS_PORT=$(free_port)
GWS_METRICS_PORT=$(free_port)
DIRECT_URL="http://127.0.0.1:$UP_PORT/mcp"
GATEWAY_URL="http://127.0.0.1:$GW_PORT/mcp"
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
STDIO_URL="http://127.0.0.1:$GWS_PORT/mcp"
STDIO_METRICS_URL="http://127.0.0.1:$GWS_METRICS_PORT/metrics"

# The test secret for HS256 (48 random bytes, base64): only this run's gateway knows it.
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET

if [ -n "$SOAK_MIN" ]; then
  TTL_MIN=$((SOAK_MIN + SOAK_WARMUP / 60 + 60))
else
  TTL_MIN=60
fi

# gateway_config NAME PUBLIC_URL METRICS_PORT UPSTREAM_TOML: writes $DIR/NAME.toml. The two
# gateways differ only in their upstream (and their own ports, store and audit file).
gateway_config() {
  cat >"$DIR/$1.toml" <<EOF
# Generated by bench/load.sh.
[authorization]
mode = "rbac"
default_role = "readonly"

# alice is a \`user\`: tools the upstream marks read-only (the demo's \`echo\`).
[[users]]
subject = "alice"
roles = ["user"]

[server]
public_url = "$2"

[upstream]
$4

[store]
path = "$DIR/$1.db"

[token]
algorithm = "HS256"
secret_env = "JWT_SECRET"

# Auditing stays on: one JSON line per decision, to a file rotated by size.
[audit]
path = "$DIR/$1.audit.jsonl"
max_bytes = 33554432
keep = 2

[metrics]
bind = "127.0.0.1:$3"
EOF
}
gateway_config gateway "$GATEWAY_URL" "$METRICS_PORT" "url = \"$DIRECT_URL\""
# The default configuration's upstream: the demo server as a stdio child of the gateway (a small
# pool of them for alice's stateless requests).
gateway_config gateway-stdio "$STDIO_URL" "$GWS_METRICS_PORT" "command = \"$BIN\"
args = [\"demo\", \"stdio\"]"

if [ -n "$SHIM" ]; then
  "${SERVER_PIN[@]}" env LD_PRELOAD="$SHIM" "$BIN" demo http --bind "127.0.0.1:$UP_PORT" \
    >"$DIR/demo.out" 2>"$DIR/demo.log" &
else
  "${SERVER_PIN[@]}" "$BIN" demo http --bind "127.0.0.1:$UP_PORT" \
    >"$DIR/demo.out" 2>"$DIR/demo.log" &
fi
DEMO_PID=$!
PIDS+=("$DEMO_PID")
wait_for_line "listening on" "$DIR/demo.log" 30 "$DEMO_PID"

# With --instructions, the two proxies run under callgrind, counting nothing until told to.
# callgrind COUNTED_NAME: the command prefix for one of them.
callgrind() {
  if [ "$INSTRUCTIONS" = 1 ]; then
    echo valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$DIR/$1.callgrind"
  fi
}
START_LIMIT=60
[ "$INSTRUCTIONS" = 1 ] && START_LIMIT=300

# shellcheck disable=SC2046  # the prefix is words on purpose
"${SERVER_PIN[@]}" $(callgrind gateway) "$BIN" serve --config "$DIR/gateway.toml" \
  >"$DIR/gateway.out" 2>"$DIR/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_for_line "mcp-guard listening" "$DIR/gateway.log" "$START_LIMIT" "$GW_PID"

# shellcheck disable=SC2046
"${SERVER_PIN[@]}" $(callgrind gateway-stdio) "$BIN" serve --config "$DIR/gateway-stdio.toml" \
  >"$DIR/gateway-stdio.out" 2>"$DIR/gateway-stdio.log" &
GWS_PID=$!
PIDS+=("$GWS_PID")
wait_for_line "mcp-guard listening" "$DIR/gateway-stdio.log" "$START_LIMIT" "$GWS_PID"

# The baseline: the same HTTP server, client, runtime and allocator, forwarding without any
# authentication, authorization, audit or metrics (`mcp-guard demo passthrough`).
PASS_PORT=$(free_port)
PASS_URL="http://127.0.0.1:$PASS_PORT/mcp"
# shellcheck disable=SC2046
"${SERVER_PIN[@]}" $(callgrind passthrough) "$BIN" demo passthrough --bind "127.0.0.1:$PASS_PORT" \
  --upstream "$DIRECT_URL" >"$DIR/passthrough.out" 2>"$DIR/passthrough.log" &
PASS_PID=$!
PIDS+=("$PASS_PID")
wait_for_line "passthrough on" "$DIR/passthrough.log" "$START_LIMIT" "$PASS_PID"

# The reference: nginx forwarding to the demo server over kept-alive HTTP/1.1 connections, no
# access log, measured on its worker process. Not the product: what a mature C proxy with no
# auth at all costs per request on this machine and placement.
NGINX_NOTE="not run (nginx not on PATH)"
NGINX_WORKER=""
if [ "$NGINX_WANTED" = 0 ] || [ "$QUICK" = 1 ] || [ -n "$SOAK_MIN" ] || [ "$INSTRUCTIONS" = 1 ]; then
  NGINX_NOTE="not run"
elif command -v nginx >/dev/null; then
  NGINX_PORT=$(free_port)
  NGINX_URL="http://127.0.0.1:$NGINX_PORT/mcp"
  NGINX_STATIC_URL="http://127.0.0.1:$NGINX_PORT/static"
  mkdir -p "$DIR/nginx"
  cat >"$DIR/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $DIR/nginx/body;
  proxy_temp_path $DIR/nginx/proxy;
  fastcgi_temp_path $DIR/nginx/fastcgi;
  uwsgi_temp_path $DIR/nginx/uwsgi;
  scgi_temp_path $DIR/nginx/scgi;
  upstream demo { server 127.0.0.1:$UP_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /mcp {
      proxy_pass http://demo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The demo server checks Host against its own address (DNS rebinding protection).
      proxy_set_header Host \$http_host;
      proxy_buffering off;
    }
    # The floor: nginx answering the echo itself, one HTTP exchange and no upstream. Any proxy
    # pays this on the client side and again on an HTTP upstream side.
    location = /static {
      default_type text/event-stream;
      return 200 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}]}}\n\n';
    }
  }
}
EOF
  "${SERVER_PIN[@]}" nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" \
    >"$DIR/nginx/stdout" 2>"$DIR/nginx/stderr" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  for _ in $(seq 1 50); do
    NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n 1 || true)
    [ -n "$NGINX_WORKER" ] && curl -s -o /dev/null --max-time 1 "$NGINX_URL" && break
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$NGINX_WORKER" ]; then
    NGINX_NOTE="$(nginx -v 2>&1 | sed 's/^nginx version: //'), one worker, kept-alive upstream connections, no access log"
  else
    echo "load.sh: warning: nginx did not start; see $DIR/nginx/stderr (use --keep)" >&2
    NGINX_NOTE="did not start"
  fi
fi

TOKEN=$("$BIN" token issue --config "$DIR/gateway.toml" --sub alice --ttl "${TTL_MIN}m") ||
  die "mcp-guard token issue failed"
[ -n "$TOKEN" ] || die "empty token"
# The stdio gateway is another issuer (its own public URL): alice gets a token of its own.
STDIO_TOKEN=$("$BIN" token issue --config "$DIR/gateway-stdio.toml" --sub alice --ttl "${TTL_MIN}m") ||
  die "mcp-guard token issue failed (stdio gateway)"
[ -n "$STDIO_TOKEN" ] || die "empty token (stdio gateway)"

# ---------------------------------------------------------------------------------------------
# One request of each kind, checked before any load.

BODY_ECHO='{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
BODY_DELETE='{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/tmp/x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

# call URL TOOL BODY [TOKEN]: prints "STATUS BODY".
call() {
  local url="$1" tool="$2" body="$3" token="${4:-}" auth=()
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  curl -sS --max-time 10 -o "$DIR/call.body" -w '%{http_code}' "$url" "${auth[@]}" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H "Mcp-Name: $tool" \
    -d "$body" || echo "curl-failed"
  printf ' '
  tr -d '\r\n' <"$DIR/call.body" | head -c 400
}

expect() {
  local what="$1" want_status="$2" want_text="$3" got="$4"
  local status="${got%% *}"
  if [ "$status" != "$want_status" ] || [[ "$got" != *"$want_text"* ]]; then
    die "$what: expected HTTP $want_status with $want_text, got: $got"
  fi
  echo "check: $what: HTTP $status ok" >&2
}

expect "direct echo" 200 '"text":"hello"' "$(call "$DIRECT_URL" echo "$BODY_ECHO")"
expect "passthrough echo" 200 '"text":"hello"' "$(call "$PASS_URL" echo "$BODY_ECHO")"
if [ -n "$NGINX_WORKER" ]; then
  expect "nginx echo" 200 '"text":"hello"' "$(call "$NGINX_URL" echo "$BODY_ECHO")"
  expect "nginx static echo" 200 '"text":"hello"' "$(call "$NGINX_STATIC_URL" echo "$BODY_ECHO")"
fi
expect "gateway echo with alice's token" 200 '"text":"hello"' "$(call "$GATEWAY_URL" echo "$BODY_ECHO" "$TOKEN")"
expect "gateway echo without a token" 401 '' "$(call "$GATEWAY_URL" echo "$BODY_ECHO")"
expect "gateway delete_file for alice (RBAC)" 403 'tools:execute:delete_file' "$(call "$GATEWAY_URL" delete_file "$BODY_DELETE" "$TOKEN")"
expect "stdio gateway echo with alice's token" 200 '"text":"hello"' "$(call "$STDIO_URL" echo "$BODY_ECHO" "$STDIO_TOKEN")"
expect "stdio gateway echo without a token" 401 '' "$(call "$STDIO_URL" echo "$BODY_ECHO")"
expect "stdio gateway echo with the other gateway's token" 401 '' "$(call "$STDIO_URL" echo "$BODY_ECHO" "$TOKEN")"
expect "stdio gateway delete_file for alice (RBAC)" 403 'tools:execute:delete_file' "$(call "$STDIO_URL" delete_file "$BODY_DELETE" "$STDIO_TOKEN")"

# ---------------------------------------------------------------------------------------------
# Measurements.

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # utime + stime of process $1, in clock ticks (fields 14 and 15 of /proc/PID/stat)
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
metric() {  # metric URL NAME: the value of an unlabelled gauge from a gateway's /metrics, or "n/a"
  curl -sS --max-time 5 "$1" 2>/dev/null | awk -v m="$2" '$1 == m { v = $2 } END { print (v == "" ? "n/a" : v) }'
}
children() {  # processes whose parent is process $1 (field 4 of /proc/PID/stat)
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '{ sub(/^.*\) /, ""); if ($2 == p) n++ } END { print n + 0 }'
}
children_ticks() {  # utime + stime of every child of process $1, in clock ticks
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '{ sub(/^.*\) /, ""); if ($2 == p) t += $12 + $13 } END { print t + 0 }'
}
upstream_ticks() {  # upstream_ticks demo|PID: the demo server's CPU, or that of PID's children
  if [ "$1" = demo ]; then cpu_ticks "$DEMO_PID"; else children_ticks "$1"; fi
}
log_problems() {  # WARN and ERROR lines both gateways have logged so far
  cat "$DIR/gateway.log" "$DIR/gateway-stdio.log" | grep -cE ' (WARN|ERROR) ' || true
}
value() {  # value FILE KEY: a "LOAD KEY VALUE" line printed by mcp-call.lua
  awk -v k="$2" '$1 == "LOAD" && $2 == k { print $3; exit }' "$1"
}

# run_wrk NAME URL TOKEN THREADS CONNECTIONS SECONDS: one wrk run, output in $DIR/NAME.txt,
# checked: every response a 200 with the echo, no socket errors.
run_wrk() {
  local name="$1" url="$2" token="$3" threads="$4" conns="$5" secs="$6"
  local out="$DIR/$name.txt"
  MCP_TOKEN="$token" "${WRK_PIN[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s --latency \
    -s "$LUA" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "$name: wrk failed"; }
  local non2xx bad sock requests line
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
  non2xx="${non2xx:-0}"
  bad=$(value "$out" bad)
  sock=$(value "$out" socket_errors)
  line=$(grep -E '^ *[0-9]+ requests in ' "$out" || true)
  requests=$(echo "$line" | awk '{ print $1 }')
  [ -n "$requests" ] || { cat "$out" >&2; die "$name: no 'N requests in' line from wrk"; }
  [ "$requests" = "$(value "$out" requests)" ] || die "$name: wrk's request counts disagree"
  if [ "$non2xx" != 0 ] || [ "${bad:-1}" != 0 ] || [ "${sock:-1}" != 0 ] || [ "$requests" = 0 ]; then
    cat "$out" >&2
    die "$name: $requests requests, $non2xx non-2xx, $bad not a 200 with the echo, $sock socket errors"
  fi
}

declare -A R  # results: R[name.key]

# measure NAME URL TOKEN THREADS CONNECTIONS [PROXY_PID [UPSTREAM]]: a short unrecorded warm-up,
# then the measured run with the proxy's (default: the gateway's) and the upstream's CPU time read
# around it. UPSTREAM is `demo` (the demo server, default) or a PID whose children are the
# upstream (the stdio gateway's; its pool of children is started by the warm-up).
measure() {
  local name="$1" url="$2" token="$3" threads="$4" conns="$5" proxy="${6:-$GW_PID}" upstream="${7:-demo}"
  local warm=$((DURATION < 2 ? DURATION : 2))
  run_wrk "$name-warmup" "$url" "$token" "$threads" "$conns" "$warm"
  local gw0 up0 gw1 up1 logs0 logs1
  logs0=$(log_problems)
  gw0=$(cpu_ticks "$proxy")
  up0=$(upstream_ticks "$upstream")
  run_wrk "$name" "$url" "$token" "$threads" "$conns" "$DURATION"
  gw1=$(cpu_ticks "$proxy")
  up1=$(upstream_ticks "$upstream")
  logs1=$(log_problems)
  local out="$DIR/$name.txt" requests dur_us
  requests=$(value "$out" requests)
  dur_us=$(value "$out" duration_us)
  R[$name.requests]=$requests
  R[$name.rps]=$(awk -v n="$requests" -v d="$dur_us" 'BEGIN { printf "%.0f", n * 1e6 / d }')
  R[$name.p50]=$(value "$out" p50_us)
  R[$name.p90]=$(value "$out" p90_us)
  R[$name.p99]=$(value "$out" p99_us)
  R[$name.gwcpu]=$(awk -v t=$((gw1 - gw0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  R[$name.upcpu]=$(awk -v t=$((up1 - up0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  R[$name.logs]=$((logs1 - logs0))
  printf 'run %-22s %8s requests %7s req/s  p50 %6s us  p90 %6s us  p99 %6s us  proxy CPU %6s us/req  demo CPU %6s us/req\n' \
    "$name" "$requests" "${R[$name.rps]}" "${R[$name.p50]}" "${R[$name.p90]}" "${R[$name.p99]}" \
    "${R[$name.gwcpu]}" "${R[$name.upcpu]}" >&2
}

HEADER_INFO() {
  echo "- Command: \`$COMMAND_LINE\` ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo "- Binary: \`$BIN\` ($("$BIN" --version 2>/dev/null || echo unknown version))"
  echo "- Machine: nproc $NPROC, CPU \`$CPU_MODEL\`; placement: $PLACEMENT"
  echo "- Demo server: \`mcp-guard demo http\` (rmcp streamable HTTP, SSE answers); $SHIM_NOTE"
  echo "- Gateways: HS256 bearer token for \`alice\` (role \`user\`), RBAC (\`tools:execute:@safe\`), audit to a file, metrics listener on; \`gateway\` in front of the demo server over HTTP, \`gateway-stdio\` in front of \`mcp-guard demo stdio\` children (a pool of 2 for alice), whose CPU is the stdio runs' demo CPU"
  echo "- Reference proxy: nginx: $NGINX_NOTE"
}

# count NAME URL TOKEN PID: instructions per request of the callgrind process PID while wrk
# sends requests over 1 connection for DURATION seconds (after an uncounted warm-up).
count() {
  local name="$1" url="$2" token="$3" pid="$4"
  run_wrk "$name-warmup" "$url" "$token" 1 1 2
  callgrind_control -i on "$pid" >/dev/null 2>&1
  run_wrk "$name" "$url" "$token" 1 1 "$DURATION"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  local dump total requests
  # The dump is written as the process gets to it: wait (boundedly) for its `totals:` line.
  for _ in $(seq 1 100); do
    dump=$(ls -t "$DIR/$name.callgrind".* 2>/dev/null | head -n 1 || true)
    [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
    sleep 0.1
  done
  total=$(awk '$1 == "totals:" { print $2 }' "${dump:-/dev/null}")
  [ -n "$total" ] || die "$name: no callgrind dump with a totals line"
  requests=$(value "$DIR/$name.txt" requests)
  R[$name.requests]=$requests
  R[$name.instructions]=$((total / requests))
  printf 'count %-14s %8s requests  %9s instructions per request\n' "$name" "$requests" "${R[$name.instructions]}" >&2
}

if [ "$INSTRUCTIONS" = 1 ]; then
  echo "load.sh: instructions per request under callgrind, $DURATION s at 1 connection each; $PLACEMENT" >&2
  count passthrough "$PASS_URL" "" "$PASS_PID"
  count gateway "$GATEWAY_URL" "$TOKEN" "$GW_PID"
  count gateway-stdio "$STDIO_URL" "$STDIO_TOKEN" "$GWS_PID"
  echo
  echo "### Gateway load benchmark: instructions per request"
  echo
  HEADER_INFO
  echo "- Counting: valgrind callgrind, instructions only while \`wrk -t1 -c1\` ran for ${DURATION} s (after a 2 s warm-up); every response checked (200 with the echo)"
  echo
  echo "| Proxy | Requests counted | Instructions per request |"
  echo "|---|---:|---:|"
  echo "| passthrough (no auth) | ${R[passthrough.requests]} | ${R[passthrough.instructions]} |"
  echo "| gateway (HTTP upstream) | ${R[gateway.requests]} | ${R[gateway.instructions]} |"
  echo "| the guard's own (gateway - passthrough) | | $((${R[gateway.instructions]} - ${R[passthrough.instructions]})) |"
  echo "| gateway-stdio (stdio children; the children's work not counted) | ${R[gateway-stdio.requests]} | ${R[gateway-stdio.instructions]} |"
  echo
elif [ -z "$SOAK_MIN" ]; then
  echo "load.sh: $DURATION s per run, $ROUNDS round(s); $PLACEMENT" >&2
  RUNS=(direct-c1 passthrough-c1 gateway-c1 gateway-stdio-c1)
  [ -n "$NGINX_WORKER" ] && RUNS+=(nginx-c1 nginx-static-c1)
  RUNS+=(direct-c16 passthrough-c16 gateway-c16 gateway-stdio-c16)
  [ -n "$NGINX_WORKER" ] && RUNS+=(nginx-c16 nginx-static-c16)
  for round in $(seq 1 "$ROUNDS"); do
    for name in "${RUNS[@]}"; do
      case "$name" in
        direct-c1) measure "$name-r$round" "$DIRECT_URL" "" 1 1 ;;
        passthrough-c1) measure "$name-r$round" "$PASS_URL" "" 1 1 "$PASS_PID" ;;
        gateway-c1) measure "$name-r$round" "$GATEWAY_URL" "$TOKEN" 1 1 ;;
        gateway-stdio-c1) measure "$name-r$round" "$STDIO_URL" "$STDIO_TOKEN" 1 1 "$GWS_PID" "$GWS_PID" ;;
        nginx-c1) measure "$name-r$round" "$NGINX_URL" "" 1 1 "$NGINX_WORKER" ;;
        direct-c16) measure "$name-r$round" "$DIRECT_URL" "" 2 16 ;;
        passthrough-c16) measure "$name-r$round" "$PASS_URL" "" 2 16 "$PASS_PID" ;;
        gateway-c16) measure "$name-r$round" "$GATEWAY_URL" "$TOKEN" 2 16 ;;
        gateway-stdio-c16) measure "$name-r$round" "$STDIO_URL" "$STDIO_TOKEN" 2 16 "$GWS_PID" "$GWS_PID" ;;
        nginx-c16) measure "$name-r$round" "$NGINX_URL" "" 2 16 "$NGINX_WORKER" ;;
        nginx-static-c1) measure "$name-r$round" "$NGINX_STATIC_URL" "" 1 1 "$NGINX_WORKER" ;;
        nginx-static-c16) measure "$name-r$round" "$NGINX_STATIC_URL" "" 2 16 "$NGINX_WORKER" ;;
      esac
    done
  done
  # Each figure of a run is its median over the rounds (the lower middle one for an even count,
  # so whole numbers stay whole); log lines are added up.
  for name in "${RUNS[@]}"; do
    for key in requests rps p50 p90 p99 gwcpu upcpu; do
      R[$name.$key]=$(for round in $(seq 1 "$ROUNDS"); do echo "${R[$name-r$round.$key]}"; done |
        sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    done
    R[$name.logs]=0
    for round in $(seq 1 "$ROUNDS"); do
      R[$name.logs]=$((${R[$name.logs]} + ${R[$name-r$round.logs]}))
    done
  done
  OWN_P50=$((${R[gateway-c1.p50]} - ${R[passthrough-c1.p50]}))
  OWN_CPU1=$(awk -v g="${R[gateway-c1.gwcpu]}" -v p="${R[passthrough-c1.gwcpu]}" 'BEGIN { printf "%.1f", g - p }')
  OWN_CPU16=$(awk -v g="${R[gateway-c16.gwcpu]}" -v p="${R[passthrough-c16.gwcpu]}" 'BEGIN { printf "%.1f", g - p }')
  PASS_RATIO=$(awk -v g="${R[passthrough-c16.rps]}" -v d="${R[direct-c16.rps]}" 'BEGIN { printf "%.2f", g / d }')

  ADDED_P50=$((${R[gateway-c1.p50]} - ${R[direct-c1.p50]}))
  ADDED_P99=$((${R[gateway-c1.p99]} - ${R[direct-c1.p99]}))
  RATIO=$(awk -v g="${R[gateway-c16.rps]}" -v d="${R[direct-c16.rps]}" 'BEGIN { printf "%.2f", g / d }')
  STDIO_ADDED_P50=$((${R[gateway-stdio-c1.p50]} - ${R[direct-c1.p50]}))
  STDIO_ADDED_P99=$((${R[gateway-stdio-c1.p99]} - ${R[direct-c1.p99]}))
  STDIO_RATIO=$(awk -v g="${R[gateway-stdio-c16.rps]}" -v d="${R[direct-c16.rps]}" 'BEGIN { printf "%.2f", g / d }')
  met() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "met" : "missed") }'; }

  echo
  echo "### Gateway load benchmark: results"
  echo
  HEADER_INFO
  echo "- wrk: \`-t1 -c1 --latency\` and \`-t2 -c16\`, ${DURATION} s each after a 2 s warm-up; every response checked (200 with the echo)"
  if [ "$ROUNDS" -gt 1 ]; then
    echo "- $ROUNDS rounds of every run, interleaved; each figure below is its median over the rounds (requests: the median round's count)"
  fi
  echo
  echo "| Run | Connections | Requests | Req/s | p50 (µs) | p90 (µs) | p99 (µs) | Proxy CPU (µs/req) | Demo CPU (µs/req) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for name in "${RUNS[@]}"; do
    conns=${name##*-c}
    gwcpu="${R[$name.gwcpu]}"
    upcpu="${R[$name.upcpu]}"
    [[ "$name" == direct-* ]] && gwcpu="(none) -"
    [[ "$name" == nginx-static-* ]] && upcpu="(none) -"
    echo "| ${name%-c*} | $conns | ${R[$name.requests]} | ${R[$name.rps]} | ${R[$name.p50]} | ${R[$name.p90]} | ${R[$name.p99]} | $gwcpu | $upcpu |"
  done
  echo
  echo "| Measure | Value | Target | |"
  echo "|---|---:|---|---|"
  echo "| Added latency, p50 at 1 connection (HTTP upstream) | $ADDED_P50 µs | <= 100 µs | $(met "$ADDED_P50" 100) |"
  echo "| Added latency, p99 at 1 connection (HTTP upstream) | $ADDED_P99 µs | (none) | |"
  echo "| Throughput, gateway / direct at 16 connections (HTTP upstream) | ${RATIO}x | (agentgateway publishes 0.37-0.48x) | reported |"
  echo "| Gateway CPU per proxied tools/call, 1 connection (HTTP upstream) | ${R[gateway-c1.gwcpu]} µs | <= 50 µs | $(met "${R[gateway-c1.gwcpu]}" 50) |"
  echo "| Gateway CPU per proxied tools/call, 16 connections (HTTP upstream) | ${R[gateway-c16.gwcpu]} µs | <= 50 µs | $(met "${R[gateway-c16.gwcpu]}" 50) |"
  echo "| Added latency, p50 at 1 connection (stdio children) | $STDIO_ADDED_P50 µs | <= 100 µs | $(met "$STDIO_ADDED_P50" 100) |"
  echo "| Added latency, p99 at 1 connection (stdio children) | $STDIO_ADDED_P99 µs | (none) | |"
  echo "| Throughput, gateway-stdio / direct at 16 connections | ${STDIO_RATIO}x | | reported |"
  echo "| Gateway CPU per proxied tools/call, 1 connection (stdio children) | ${R[gateway-stdio-c1.gwcpu]} µs | <= 50 µs | $(met "${R[gateway-stdio-c1.gwcpu]}" 50) |"
  echo "| Gateway CPU per proxied tools/call, 16 connections (stdio children) | ${R[gateway-stdio-c16.gwcpu]} µs | <= 50 µs | $(met "${R[gateway-stdio-c16.gwcpu]}" 50) |"
  echo "| Passthrough (no auth) CPU per tools/call, 1 / 16 connections | ${R[passthrough-c1.gwcpu]} / ${R[passthrough-c16.gwcpu]} µs | (baseline) | |"
  echo "| Gateway CPU beyond the passthrough, 1 / 16 connections | $OWN_CPU1 / $OWN_CPU16 µs | (the guard's own work) | |"
  echo "| Latency beyond the passthrough, p50 at 1 connection | $OWN_P50 µs | | |"
  echo "| Throughput, passthrough / direct at 16 connections | ${PASS_RATIO}x | | |"
  if [ -n "$NGINX_WORKER" ]; then
    echo "| nginx (no auth) CPU per tools/call, 1 / 16 connections | ${R[nginx-c1.gwcpu]} / ${R[nginx-c16.gwcpu]} µs | (reference) | |"
    echo "| nginx added latency, p50 at 1 connection | $((${R[nginx-c1.p50]} - ${R[direct-c1.p50]})) µs | (reference) | |"
    echo "| Throughput, nginx / direct at 16 connections | $(awk -v g="${R[nginx-c16.rps]}" -v d="${R[direct-c16.rps]}" 'BEGIN { printf "%.2f", g / d }')x | (reference) | |"
    echo "| nginx answering by itself (one HTTP exchange, no upstream), CPU per request, 1 / 16 connections | ${R[nginx-static-c1.gwcpu]} / ${R[nginx-static-c16.gwcpu]} µs | (floor) | |"
  fi
  echo "| Gateway WARN/ERROR log lines during measured runs | $((${R[gateway-c1.logs]} + ${R[gateway-c16.logs]} + ${R[gateway-stdio-c1.logs]} + ${R[gateway-stdio-c16.logs]})) | 0 | |"
  echo
  if [ "$QUICK" = 1 ]; then
    echo "(--quick: short runs, possibly a debug binary; the targets apply to the release binary with 10 s runs.)"
    echo
  fi
else
  # -------------------------------------------------------------------------------------------
  # Soak: 2 connections through one gateway (full speed for those two connections), sampled
  # every 30 s.
  SOAK_SECS=$((SOAK_MIN * 60))
  if [ "$SOAK_UPSTREAM" = stdio ]; then
    SOAK_PID=$GWS_PID SOAK_URL=$STDIO_URL SOAK_TOKEN=$STDIO_TOKEN SOAK_METRICS=$STDIO_METRICS_URL
    SOAK_LOG="$DIR/gateway-stdio.log" SOAK_NAME="gateway-stdio (stdio children)"
  else
    SOAK_PID=$GW_PID SOAK_URL=$GATEWAY_URL SOAK_TOKEN=$TOKEN SOAK_METRICS=$METRICS_URL
    SOAK_LOG="$DIR/gateway.log" SOAK_NAME="gateway (HTTP upstream)"
  fi
  # The upstream's RSS: the demo server's, or that of the stdio gateway's children, added up.
  up_rss() {
    if [ "$SOAK_UPSTREAM" = stdio ]; then
      cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$SOAK_PID" '{ pid = $1; sub(/^.*\) /, ""); if ($2 == p) print pid }' |
        while read -r kid; do rss_kib "$kid" 2>/dev/null || true; done | awk '{ t += $1 } END { print t + 0 }'
    else
      rss_kib "$DEMO_PID"
    fi
  }
  echo "load.sh: soak of $SOAK_NAME: ${SOAK_WARMUP} s warm-up, then ${SOAK_MIN} min at wrk -t1 -c2; $PLACEMENT" >&2
  # One reading: gateway RSS, upstream RSS, sessions, upstream processes, children, and the
  # WARN/ERROR lines logged so far.
  soak_reading() {
    echo "$(rss_kib "$SOAK_PID") $(up_rss) $(metric "$SOAK_METRICS" mcp_guard_sessions)" \
      "$(metric "$SOAK_METRICS" mcp_guard_upstream_processes) $(children "$SOAK_PID")" \
      "$(grep -cE ' (WARN|ERROR) ' "$SOAK_LOG" || true)"
  }
  run_wrk soak-warmup "$SOAK_URL" "$SOAK_TOKEN" 1 2 "$SOAK_WARMUP"
  read -r RSS0 DEMO_RSS0 SESS0 PROCS0 KIDS0 LOGS0 <<<"$(soak_reading)"
  echo "soak start: gateway RSS ${RSS0} KiB, upstream RSS ${DEMO_RSS0} KiB, sessions $SESS0, upstream processes $PROCS0, children $KIDS0" >&2

  MCP_TOKEN="$SOAK_TOKEN" "${WRK_PIN[@]}" wrk -t1 -c2 -d"${SOAK_SECS}s" --timeout 5s --latency \
    -s "$LUA" "$SOAK_URL" >"$DIR/soak.txt" 2>&1 &
  SOAK_WRK=$!
  BG_PIDS+=("$SOAK_WRK")
  echo "elapsed_s gateway_rss_kib upstream_rss_kib sessions upstream_processes children" >"$DIR/samples.txt"
  START=$SECONDS
  DEADLINE=$((SECONDS + SOAK_SECS + 60))
  NEXT=$((SECONDS + 30))
  while kill -0 "$SOAK_WRK" 2>/dev/null && [ "$SECONDS" -lt "$DEADLINE" ]; do
    if [ "$SECONDS" -ge "$NEXT" ]; then
      # The samples file keeps the first five fields.
      echo "$((SECONDS - START)) $(soak_reading | awk '{ print $1, $2, $3, $4, $5 }')" >>"$DIR/samples.txt"
      NEXT=$((NEXT + 30))
    fi
    sleep 1
  done
  wait "$SOAK_WRK" || { cat "$DIR/soak.txt" >&2; die "soak: wrk failed"; }
  BG_PIDS=()
  read -r RSS1 DEMO_RSS1 SESS1 PROCS1 KIDS1 LOGS1 <<<"$(soak_reading)"
  RSS_MAX=$(awk 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$DIR/samples.txt")
  S="$DIR/soak.txt"
  NON2XX=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$S")
  NON2XX="${NON2XX:-0}"
  BAD=$(value "$S" bad)
  SOCK=$(value "$S" socket_errors)
  REQS=$(value "$S" requests)
  GROWTH=$(awk -v a="$RSS0" -v b="$RSS1" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
  DEMO_GROWTH=$(awk -v a="$DEMO_RSS0" -v b="$DEMO_RSS1" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
  ok() { if [ "$1" = 1 ]; then echo met; else echo missed; fi; }

  echo
  echo "### Gateway soak: results"
  echo
  HEADER_INFO
  echo "- wrk: \`-t1 -c2\` through $SOAK_NAME for ${SOAK_MIN} min, after a ${SOAK_WARMUP} s warm-up (RSS read at the end of the warm-up and at the end)"
  echo
  echo "| Measure | Start | End | Target | |"
  echo "|---|---:|---:|---|---|"
  echo "| Gateway RSS (KiB) | $RSS0 | $RSS1 (max sampled $RSS_MAX) | growth < 10% | ${GROWTH}%: $(ok "$(awk -v g="$GROWTH" 'BEGIN { print (g < 10) }')") |"
  echo "| Gateway RSS growth per 1,000 requests (KiB) | | $(awk -v a="$RSS0" -v b="$RSS1" -v n="$REQS" 'BEGIN { printf "%.1f", (b - a) * 1000 / n }') | | |"
  if [ "$SOAK_UPSTREAM" = stdio ]; then
    UP_LABEL="RSS of the gateway's stdio children, added up (KiB)"
    # Every child is one the gateway counts, and the pool does not grow under steady load.
    PROCS_WANT="= children"
    PROCS_OK=$([ "$PROCS1" = "$KIDS1" ] && echo 1 || echo 0)
    KIDS_OK=$([ "$KIDS1" = "$PROCS1" ] && [ "$KIDS1" -le "$KIDS0" ] && echo 1 || echo 0)
  else
    UP_LABEL="Demo server RSS (KiB)"
    PROCS_WANT="0 (HTTP upstream)"
    PROCS_OK=$([ "$PROCS1" = 0 ] && echo 1 || echo 0)
    KIDS_OK=$([ "$KIDS1" = 0 ] && echo 1 || echo 0)
  fi
  echo "| $UP_LABEL | $DEMO_RSS0 | $DEMO_RSS1 | (upstream) | ${DEMO_GROWTH}% |"
  echo "| mcp_guard_sessions | $SESS0 | $SESS1 | no growth | $(ok "$([ "$SESS1" = "$SESS0" ] && echo 1 || echo 0)") |"
  echo "| mcp_guard_upstream_processes | $PROCS0 | $PROCS1 | $PROCS_WANT | $(ok "$PROCS_OK") |"
  echo "| Child processes of the gateway | $KIDS0 | $KIDS1 | 0 leaked | $(ok "$KIDS_OK") |"
  echo "| Requests (all 200 with the echo) | | $REQS | | |"
  echo "| Non-2xx / not the echo / socket errors | | $NON2XX / $BAD / $SOCK | 0 | $(ok "$([ "$NON2XX$BAD$SOCK" = 000 ] && echo 1 || echo 0)") |"
  echo "| Gateway WARN/ERROR log lines during the soak | | $((LOGS1 - LOGS0)) | | |"
  echo "| Latency p50 / p99 (µs) | | $(value "$S" p50_us) / $(value "$S" p99_us) | | |"
  echo
  echo "RSS samples (every 30 s):"
  echo
  echo '```'
  cat "$DIR/samples.txt"
  echo '```'
  if [ "$((LOGS1 - LOGS0))" != 0 ]; then
    echo
    echo "Distinct gateway WARN/ERROR messages during the soak (count, message):"
    echo
    echo '```'
    grep -E ' (WARN|ERROR) ' "$SOAK_LOG" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -n 10
    echo '```'
  fi
  echo
  if [ "$NON2XX$BAD$SOCK" != 000 ]; then
    die "soak: $NON2XX non-2xx, $BAD not the echo, $SOCK socket errors"
  fi
fi
FAILED=0
