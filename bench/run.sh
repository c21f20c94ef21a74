#!/usr/bin/env bash
# gatehouse benchmark: puts each gatehouse figure beside its limit measured in the same
# run, on loopback only, bounded in time (about 4 minutes).
#
#   bench/run.sh            # needs: wrk, nginx (Debian packages), a Rust toolchain
#   DURATION=10 bench/run.sh
#
# Cases (each: a warm-up, then RUNS runs of DURATION seconds; medians are printed):
#   app                nginx -> app, no auth                      (the machine's limit)
#   hop                nginx auth_request -> trivial 200 endpoint (the hop's limit)
#   fa-cookie          nginx auth_request -> gatehouse, valid two-factor session
#   fa-401             nginx auth_request -> gatehouse, no cookie (401 path)
#   proxy              client -> gatehouse proxy mode -> app, valid session (vs app)
#   fa-rotating        fa-cookie rotating over 1,000 of 100,000 sessions (Lua)
#   pg-*, revocation   three replicas on PostgreSQL: see bench/postgres.sh (PG=0 skips)
#   fa-under-attack    fa-cookie while a second client floods the login form with
#                      wrong passwords for many users from many addresses
set -euo pipefail

DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-16}
SESSIONS=${SESSIONS:-100000}
ROTATE=${ROTATE:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "bench: $*" >&2; exit 1; }
for tool in wrk nginx python3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || die "$tool is missing (apt-get install wrk nginx python3)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Refuse to measure on a busy machine: the figures would say nothing.
load=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$load') > ${MAX_LOAD:-0.8} else 1)"; then
    die "the machine is busy (1-minute load $load > ${MAX_LOAD:-0.8}); stop other work, wait a minute, and run again (or set MAX_LOAD)"
fi

echo "building gatehouse (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet)
GH="$ROOT/target/release/gatehouse"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APP=$(port); TRIVIAL=$(port); FRONT_APP=$(port); FRONT_HOP=$(port); FRONT_GH=$(port); PORTAL=$(port); PROXY=$(port)

# --- nginx: the backends (app, trivial auth endpoint) in one process, the three fronts
# in another, so that no front shares its worker with what it calls ---------------------
mkdir -p "$WORK/backends"
cat > "$WORK/backends/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/backends/nginx.pid;
error_log $WORK/backends/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/backends/body; proxy_temp_path $WORK/backends/proxy;
    fastcgi_temp_path $WORK/backends/fcgi; uwsgi_temp_path $WORK/backends/uwsgi; scgi_temp_path $WORK/backends/scgi;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$APP; location / { return 200 "ok\n"; } }
    server { listen 127.0.0.1:$TRIVIAL; location / { return 200; } }
}
EOF
"$NGINX" -p "$WORK/backends" -c "$WORK/backends/nginx.conf" &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$APP; keepalive 64; }
    upstream trivial { server 127.0.0.1:$TRIVIAL; keepalive 64; }
    upstream gatehouse { server 127.0.0.1:$PORTAL; keepalive 64; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    server { listen 127.0.0.1:$FRONT_APP; location / { proxy_pass http://app; } }

    server {
        listen 127.0.0.1:$FRONT_HOP;
        location / { auth_request /auth; proxy_pass http://app; }
        location = /auth { internal; proxy_pass http://trivial; proxy_pass_request_body off;
            # Any proxy_set_header here drops the inherited Connection "": set it again.
            proxy_set_header Connection ""; proxy_set_header Content-Length ""; }
    }

    server {
        listen 127.0.0.1:$FRONT_GH;
        location / {
            auth_request /auth;
            auth_request_set \$user \$upstream_http_remote_user;
            proxy_set_header Connection "";
            proxy_set_header Remote-User \$user;
            proxy_pass http://app;
        }
        location = /auth { internal; proxy_pass http://gatehouse/api/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Connection ""; proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL http://panel.bench.test\$request_uri;
            proxy_set_header X-Original-Method \$request_method; }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)

# --- gatehouse -------------------------------------------------------------------------
cat > "$WORK/gatehouse.toml" <<EOF
[server]
listen = "127.0.0.1:$PORTAL"
data_dir = "$WORK/data"
log_level = "warn"
[portal]
url = "http://auth.bench.test/"
[session]
domain = "bench.test"
secure = false
[access_control]
default_policy = "two_factor"
[proxy]
listen = "127.0.0.1:$PROXY"
[[proxy.upstreams]]
hosts = ["*"]
address = "127.0.0.1:$APP"
EOF

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
GH_PID=""
start_gatehouse() {
    "$GH" --config "$WORK/gatehouse.toml" serve 2>>"$WORK/gatehouse.log" &
    GH_PID=$!
    PIDS+=("$GH_PID")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PORTAL/api/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "gatehouse did not start: $(tail -5 "$WORK/gatehouse.log")"
}
stop_gatehouse() { kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true; }

start_gatehouse
sleep 1
RSS_IDLE=$(rss_kib "$GH_PID")
stop_gatehouse

echo "seeding $SESSIONS sessions..." >&2
"$GH" --config "$WORK/gatehouse.toml" bench-seed --users 1000 --sessions "$SESSIONS" --out "$WORK/cookies.txt" >/dev/null
head -n "$ROTATE" "$WORK/cookies.txt" > "$WORK/rotate.txt"
COOKIE="gatehouse_session=$(head -n1 "$WORK/cookies.txt")"
start_gatehouse
RSS_SEEDED=$(rss_kib "$GH_PID")

# Every seeded cookie must really be accepted, or the figures would measure the 401 path.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://127.0.0.1:$FRONT_GH/")
[ "$code" = 200 ] || die "a seeded session was refused ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FRONT_GH/")
[ "$code" = 401 ] || die "no cookie should give 401, got $code"

cat > "$WORK/rotate.lua" <<EOF
local cookies = {}
for line in io.lines("$WORK/rotate.txt") do cookies[#cookies + 1] = "gatehouse_session=" .. line end
local i = 0
request = function()
    i = i % #cookies + 1
    return wrk.format("GET", "/", { ["Cookie"] = cookies[i] })
end
EOF

# The flood: one CSRF cookie and token, then wrong passwords for random users from
# random addresses (X-Forwarded-For from a trusted hop), so every try costs an argon2.
csrf_cookie=$(curl -s -c - "http://127.0.0.1:$PORTAL/" -o "$WORK/login.html" | awk '/_csrf/ {print $6"="$7}')
csrf_token=$(grep -o 'name="csrf" value="[^"]*"' "$WORK/login.html" | head -n1 | sed 's/.*value="//; s/"$//')
# The flood must cost an argon2 per try (a wrong password: 401), or it measures nothing.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $csrf_cookie" -H "X-Forwarded-For: 10.9.9.9" \
    --data "csrf=$csrf_token&username=victim1&password=wrong" "http://127.0.0.1:$PORTAL/login")
[ "$code" = 401 ] || die "a flood login should be refused with 401 (a checked wrong password), got $code"
cat > "$WORK/flood.lua" <<EOF
math.randomseed(os.time())
request = function()
    local user = "victim" .. math.random(1, 100000)
    local ip = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
    local body = "csrf=$csrf_token&username=" .. user .. "&password=wrong" .. math.random(1, 1e9)
    return wrk.format("POST", "/login", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Cookie"] = "$csrf_cookie",
        ["X-Forwarded-For"] = ip,
    }, body)
end
EOF

# --- measuring -------------------------------------------------------------------------
# Prints "requests_per_second p50_ms p99_ms" for one wrk run.
measure() {
    local url=$1; shift
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

median3() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A RPS P50 P99
run_case() {
    local name=$1 url=$2; shift 2
    echo "measuring $name..." >&2
    wrk -t1 -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
    : > "$WORK/$name.runs"
    for _ in $(seq "$RUNS"); do measure "$url" "$@" >> "$WORK/$name.runs"; done
    RPS[$name]=$(cut -d' ' -f1 "$WORK/$name.runs" | median3)
    P50[$name]=$(cut -d' ' -f2 "$WORK/$name.runs" | median3)
    P99[$name]=$(cut -d' ' -f3 "$WORK/$name.runs" | median3)
}

run_case app "http://127.0.0.1:$FRONT_APP/"
run_case hop "http://127.0.0.1:$FRONT_HOP/"
run_case fa-cookie "http://127.0.0.1:$FRONT_GH/" -H "Cookie: $COOKIE"
run_case fa-401 "http://127.0.0.1:$FRONT_GH/"
run_case proxy "http://127.0.0.1:$PROXY/" -H "Cookie: $COOKIE" -H "Host: panel.bench.test"
run_case fa-rotating "http://127.0.0.1:$FRONT_GH/" -s "$WORK/rotate.lua"
RSS_AFTER_ROTATING=$(rss_kib "$GH_PID")

echo "starting the login flood..." >&2
FLOOD_SECONDS=$(( (DURATION + 1) * RUNS + 4 ))
wrk -t1 -c8 -d"${FLOOD_SECONDS}s" -s "$WORK/flood.lua" "http://127.0.0.1:$PORTAL/login" > "$WORK/flood.out" &
FLOOD_PID=$!
PIDS+=("$FLOOD_PID")
sleep 1
run_case fa-under-attack "http://127.0.0.1:$FRONT_GH/" -H "Cookie: $COOKIE"
wait "$FLOOD_PID" || true
FLOOD_RPS=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/flood.out")
RSS_AFTER=$(rss_kib "$GH_PID")

# --- the table -------------------------------------------------------------------------
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
row() { printf '%-44s %10s %9s %9s   %s\n' "$@"; }
echo
echo "gatehouse benchmark: $(nproc) cores, wrk -t1 -c$CONNECTIONS, ${RUNS}x${DURATION}s per case, medians"
row "case" "req/s" "p50 ms" "p99 ms" "gatehouse vs its limit"
row "--------------------------------------------" "----------" "---------" "---------" "-------------------------------"
row "nginx -> app (machine limit)" "${RPS[app]}" "${P50[app]}" "${P99[app]}" ""
row "nginx auth_request -> trivial 200 (hop limit)" "${RPS[hop]}" "${P50[hop]}" "${P99[hop]}" ""
row "nginx auth_request -> gatehouse, session" "${RPS[fa-cookie]}" "${P50[fa-cookie]}" "${P99[fa-cookie]}" \
    "$(ratio "${RPS[fa-cookie]}" "${RPS[hop]}") of hop req/s (target >= 0.95x); p99 +$(python3 -c "print(f'{${P99[fa-cookie]} - ${P99[hop]}:.3f}')") ms (target <= 1 ms)"
row "nginx auth_request -> gatehouse, no cookie" "${RPS[fa-401]}" "${P50[fa-401]}" "${P99[fa-401]}" "$(ratio "${RPS[fa-401]}" "${RPS[hop]}") of hop req/s"
row "gatehouse proxy mode -> app, session" "${RPS[proxy]}" "${P50[proxy]}" "${P99[proxy]}" "$(ratio "${RPS[proxy]}" "${RPS[app]}") of nginx proxy_pass (target >= 1.0x)"
row "forward-auth, 1,000 of $SESSIONS sessions" "${RPS[fa-rotating]}" "${P50[fa-rotating]}" "${P99[fa-rotating]}" "$(ratio "${RPS[fa-rotating]}" "${RPS[fa-cookie]}") of one session (target >= 0.90x)"
row "forward-auth under login flood" "${RPS[fa-under-attack]}" "${P50[fa-under-attack]}" "${P99[fa-under-attack]}" "p99 $(ratio "${P99[fa-under-attack]}" "${P99[fa-cookie]}") of quiet (target <= 1.5x); flood ${FLOOD_RPS} logins/s"
echo
row "memory (gatehouse resident)" "" "" "" ""
row "  idle, empty store" "$((RSS_IDLE / 1024)) MiB" "" "" "target < 20 MiB"
row "  after start with $SESSIONS sessions" "$((RSS_SEEDED / 1024)) MiB" "" "" "target < 100 MiB"
row "  after the rotating run" "$((RSS_AFTER_ROTATING / 1024)) MiB" "" "" ""
row "  after all runs" "$((RSS_AFTER / 1024)) MiB" "" "" ""

# --- PostgreSQL: three replicas on one database --------------------------------------
. "$ROOT/bench/postgres.sh"
