#!/usr/bin/env bash
# gatehouse benchmark: every figure of the performance targets beside its limit from
# the same run, on loopback only (about 8 minutes with the defaults; SOAK=600 for the
# 10-minute soak).
#
#   bench/run.sh            # needs: wrk, nginx, python3, curl (Debian packages), Rust
#   DURATION=5 RUNS=3 SOAK=60 PG=0 bench/run.sh      # a quicker look
#
# The load is shaped as the issue measured it: one nginx with two workers serving the
# fronts, the stub auth endpoint and the app; wrk -t2 -c32; client, nginx and gatehouse
# share the machine's cores. Each case runs RUNS times for DURATION seconds, the cases
# interleaved round by round (app, hop, forward-auth, …, then again), so that a drift
# of the machine moves every case alike; a ratio is taken within each round and the
# median of the rounds is printed.
#
# Cases:
#   app            nginx -> app, no auth (nginx's own proxy_pass: proxy mode's limit)
#   hop            nginx auth_request -> stub `return 200` (forward-auth's limit)
#   fa-cookie      nginx auth_request -> gatehouse, a valid two-factor session
#   fa-401         nginx auth_request -> gatehouse, no cookie
#   proxy          client -> gatehouse proxy mode -> app, a valid session
#   fa-rotating    fa-cookie rotating over 1,000 of 100,000 sessions
#   fa-quiet, fa-flood
#                  fa-cookie without and with a flood of wrong passwords for many users
#                  from many addresses (each try an argon2), interleaved; while the
#                  flood runs, real logins are timed (they must finish or say busy)
#   memory         resident memory idle, after LOGINS real logins, and over a soak of
#                  SOAK seconds of logins and checks
#   check cost     `decide` and the whole forward-auth answer without the network
#                  (criterion, benches/check.rs), and their instructions per check
#                  under callgrind when valgrind is installed (repeatable)
#   pg-*, revocation  three replicas on PostgreSQL: see bench/postgres.sh (PG=0 skips)
set -euo pipefail

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
NGINX_WORKERS=${NGINX_WORKERS:-2}
SESSIONS=${SESSIONS:-100000}
ROTATE=${ROTATE:-1000}
LOGINS=${LOGINS:-100}
SOAK=${SOAK:-120}
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
for tool in wrk nginx python3 curl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || die "$tool is missing (apt-get install wrk nginx python3 curl)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Refuse to measure on a busy machine: the figures would say nothing.
load=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$load') > ${MAX_LOAD:-0.8} else 1)"; then
    die "the machine is busy (1-minute load $load > ${MAX_LOAD:-0.8}); stop other work, wait a minute, and run again (or set MAX_LOAD)"
fi

echo "building gatehouse and the check benchmark (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet && cargo bench --bench check --no-run --quiet 2>/dev/null)
GH="$ROOT/target/release/gatehouse"
CHECK_BENCH=$(ls -t "$ROOT"/target/release/deps/check-* 2>/dev/null | grep -v '\.d$' | head -n1)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APP=$(port); TRIVIAL=$(port); FRONT_APP=$(port); FRONT_HOP=$(port); FRONT_GH=$(port)
STATUS=$(port); PORTAL=$(port); PROXY=$(port)

# --- nginx: one process, NGINX_WORKERS workers: the app, the stub, the three fronts ----
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
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

    server { listen 127.0.0.1:$APP; location / { return 200 "ok\n"; } }
    server { listen 127.0.0.1:$TRIVIAL; location / { return 200; } }
    # Connections accepted so far: how many upstream connections proxy mode opens.
    server { listen 127.0.0.1:$STATUS; location / { stub_status; } }

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

echo "seeding $SESSIONS sessions..." >&2
"$GH" --config "$WORK/gatehouse.toml" bench-seed --users 1000 --sessions "$SESSIONS" --out "$WORK/cookies.txt" >/dev/null
head -n "$ROTATE" "$WORK/cookies.txt" > "$WORK/rotate.txt"
COOKIE="gatehouse_session=$(head -n1 "$WORK/cookies.txt")"
start_gatehouse
sleep 2
RSS_IDLE=$(rss_kib "$GH_PID")

# Every seeded cookie must really be accepted, or the figures would measure the 401 path.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://127.0.0.1:$FRONT_GH/")
[ "$code" = 200 ] || die "a seeded session was refused ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FRONT_GH/")
[ "$code" = 401 ] || die "no cookie should give 401, got $code"

# Real logins (the password of every seeded user), each from its own address, timed:
#   logins.py PORT COUNT SECONDS  -> "done busy failed max_ms" (COUNT logins, or as many
#   as fit in SECONDS when COUNT is 0); a login that takes over 10 s counts as failed.
cat > "$WORK/logins.py" <<'EOF'
import http.client, re, sys, time, random
port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# "out": each signed-in session is signed out again (POST /logout), so that the store
# keeps its size and memory that grows is not data.
sign_out = len(sys.argv) > 4 and sys.argv[4] == "out"
def cookies_of(response, into):
    for line in response.msg.get_all("Set-Cookie") or []:
        name, _, value = line.split(";")[0].partition("=")
        into[name] = value
    return into
def header(jar):
    return "; ".join("%s=%s" % kv for kv in jar.items() if kv[1])
done = busy = failed = 0
worst = 0.0
end = time.monotonic() + seconds
i = 0
while (count and i < count) or (not count and time.monotonic() < end):
    i += 1
    ip = "172.16.%d.%d" % (i // 250 % 250, i % 250 + 1)
    user = "bench-%d" % (i % 1000)
    wrong = (not count) and random.random() < 0.3
    start = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/", headers={"X-Forwarded-For": ip})
        r = c.getresponse(); page = r.read().decode()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        password = "wrong password" if wrong else "bench password, not for real use"
        body = "csrf=%s&username=%s&password=%s" % (csrf, user, password.replace(" ", "+").replace(",", "%2C"))
        c.request("POST", "/login", body=body, headers={
            "Cookie": cookie, "X-Forwarded-For": ip,
            "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        signed_in = r.status in (302, 303) and not wrong
        if signed_in and sign_out:
            jar = cookies_of(r, dict([cookie.split("=", 1)]))
            c.request("GET", "/logout", headers={"Cookie": header(jar), "X-Forwarded-For": ip})
            out = c.getresponse(); page = out.read().decode(); cookies_of(out, jar)
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            c.request("POST", "/logout", body="csrf=" + token, headers={
                "Cookie": header(jar), "X-Forwarded-For": ip,
                "Content-Type": "application/x-www-form-urlencoded"})
            out = c.getresponse(); out.read()
            signed_in = out.status == 303
        if r.status == 503:
            busy += 1
        elif (r.status in (302, 303) and (signed_in or not sign_out)) or (wrong and r.status == 401):
            done += 1
        else:
            failed += 1
        c.close()
    except Exception:
        failed += 1
    worst = max(worst, (time.monotonic() - start) * 1000)
print("%d %d %d %.0f" % (done, busy, failed, worst))
EOF

echo "timing $LOGINS logins..." >&2
read -r LOGINS_DONE LOGINS_BUSY LOGINS_FAILED LOGINS_MAX <<< "$(python3 "$WORK/logins.py" "$PORTAL" "$LOGINS" 0)"
[ "$LOGINS_DONE" = "$LOGINS" ] || die "of $LOGINS logins only $LOGINS_DONE went through ($LOGINS_BUSY busy, $LOGINS_FAILED failed)"
sleep 1
RSS_LOGINS=$(rss_kib "$GH_PID")

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
# Appends "requests_per_second p50_ms p90_ms p99_ms" of one wrk run to $WORK/NAME.runs.
measure() {
    local name=$1 url=$2; shift 2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "90%" { p90 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.3f %.3f %.3f\n", rps, p50, p90, p99 }' >> "$WORK/$name.runs"
}

# One run of a named case.
run_once() {
    case $1 in
        app) measure app "http://127.0.0.1:$FRONT_APP/" ;;
        hop) measure hop "http://127.0.0.1:$FRONT_HOP/" ;;
        fa-cookie) measure fa-cookie "http://127.0.0.1:$FRONT_GH/" -H "Cookie: $COOKIE" ;;
        fa-401) measure fa-401 "http://127.0.0.1:$FRONT_GH/" ;;
        proxy)
            local before after
            before=$(curl -s "http://127.0.0.1:$STATUS/" | awk 'NR == 3 {print $1}')
            measure proxy "http://127.0.0.1:$PROXY/" -H "Cookie: $COOKIE" -H "Host: panel.bench.test"
            after=$(curl -s "http://127.0.0.1:$STATUS/" | awk 'NR == 3 {print $1}')
            # Minus the two status requests themselves.
            echo $(( after - before - 1 )) >> "$WORK/proxy.upstream-connections"
            ;;
        fa-rotating) measure fa-rotating "http://127.0.0.1:$FRONT_GH/" -s "$WORK/rotate.lua" ;;
        fa-quiet) measure fa-quiet "http://127.0.0.1:$FRONT_GH/" -H "Cookie: $COOKIE" ;;
        fa-flood)
            wrk -t1 -c8 -d"$(( DURATION + 2 ))s" -s "$WORK/flood.lua" "http://127.0.0.1:$PORTAL/login" >> "$WORK/flood.out" &
            local flood=$!
            python3 "$WORK/logins.py" "$PORTAL" 0 "$(( DURATION + 1 ))" >> "$WORK/flood-logins.runs" &
            local logins=$!
            sleep 1
            measure fa-flood "http://127.0.0.1:$FRONT_GH/" -H "Cookie: $COOKIE"
            wait "$flood" "$logins" || true
            ;;
    esac
}

# For bench/postgres.sh: a ratio, a table row, and RUNS runs of one case with their
# medians in RPS, P50, P90, P99.
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
row() { printf '%-44s %10s %9s %9s   %s\n' "$@"; }
declare -A RPS P50 P90 P99
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
summarise() {
    local name=$1
    RPS[$name]=$(cut -d' ' -f1 "$WORK/$name.runs" | median)
    P50[$name]=$(cut -d' ' -f2 "$WORK/$name.runs" | median)
    P90[$name]=$(cut -d' ' -f3 "$WORK/$name.runs" | median)
    P99[$name]=$(cut -d' ' -f4 "$WORK/$name.runs" | median)
}
run_case() {
    local name=$1 url=$2; shift 2
    echo "measuring $name..." >&2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
    : > "$WORK/$name.runs"
    for _ in $(seq "$RUNS"); do measure "$name" "$url" "$@"; done
    summarise "$name"
}

CASES=(app hop fa-cookie fa-401 proxy fa-rotating fa-quiet fa-flood)
echo "warming up..." >&2
for url in "$FRONT_APP/" "$FRONT_HOP/" "$FRONT_GH/"; do
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Cookie: $COOKIE" "http://127.0.0.1:$url" >/dev/null
done
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Cookie: $COOKIE" -H "Host: panel.bench.test" "http://127.0.0.1:$PROXY/" >/dev/null
for round in $(seq "$RUNS"); do
    for name in "${CASES[@]}"; do
        echo "round $round of $RUNS: $name..." >&2
        run_once "$name"
    done
done
for name in "${CASES[@]}"; do summarise "$name"; done
RSS_AFTER_LOAD=$(rss_kib "$GH_PID")

# --- the soak: logins and checks together, resident memory every 10 s --------------------
echo "soaking for $SOAK s (logins and checks)..." >&2
: > "$WORK/soak.rss"
wrk -t1 -c8 -d"${SOAK}s" -s "$WORK/rotate.lua" "http://127.0.0.1:$FRONT_GH/" > /dev/null &
SOAK_LOAD=$!
python3 "$WORK/logins.py" "$PORTAL" 0 "$SOAK" out > "$WORK/soak-logins.out" &
SOAK_LOGINS=$!
for _ in $(seq $(( SOAK / 10 ))); do
    sleep 10
    rss_kib "$GH_PID" >> "$WORK/soak.rss"
done
wait "$SOAK_LOAD" "$SOAK_LOGINS" || true

# --- the check's own cost ---------------------------------------------------------------
echo "measuring the check without the network (criterion)..." >&2
CHECK_TIMES=""
CALLGRIND=""
if [ -n "$CHECK_BENCH" ]; then
    CHECK_TIMES=$("$CHECK_BENCH" --bench --noplot --warm-up-time 1 --measurement-time 3 2>/dev/null |
        awk '/^[a-z]/ { name = $0; sub(/ +time:.*/, "", name) }
             /time:/ { t = $0; sub(/.*\[/, "", t); split(t, a, " "); print name "|" a[3] " " a[4] }' || true)
    if command -v valgrind >/dev/null; then
        echo "counting the check's instructions (callgrind)..." >&2
        # Counted only inside each answer: the set-up and sled's threads are left out.
        collected=$(CHECK_ITERATIONS=2000 valgrind --tool=callgrind --toggle-collect='*one_answer*' \
            --callgrind-out-file=/dev/null "$CHECK_BENCH" 2>&1 | awk '/Collected/ {print $NF}')
        CALLGRIND=$(( collected / 2000 ))
    fi
fi
# The same, over HTTP: gatehouse itself under callgrind, a fixed load on one connection
# pair, counting inside the portal's whole handling of a check (pingora's reading and
# writing included) and inside proxy mode's two request filters (the kernel is never
# counted): per-request figures that repeat where CPU time on a shared machine does not.
HTTP_COUNTS=""
if command -v valgrind >/dev/null; then
    echo "counting the handlers' instructions over HTTP (callgrind)..." >&2
    stop_gatehouse
    # Leaves its figure in COUNTED; dies rather than print a figure it did not measure.
    count_handler() {
        local toggle=$1 url=$2 code n collected
        valgrind --tool=callgrind --toggle-collect="$toggle" --callgrind-out-file=/dev/null \
            "$GH" --config "$WORK/gatehouse.toml" serve >/dev/null 2>"$WORK/callgrind.log" &
        local vg=$!
        for _ in $(seq 600); do
            curl -fs "http://127.0.0.1:$PORTAL/api/health" >/dev/null 2>&1 && break
            sleep 0.2
        done
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" -H "Host: panel.bench.test" "$url")
        [ "$code" = 200 ] || die "callgrind: $url answered $code under valgrind, not 200"
        n=$(wrk -t1 -c2 -d10s -H "Cookie: $COOKIE" -H "Host: panel.bench.test" "$url" |
            awk '/requests in/ {print $1}')
        kill "$vg"; wait "$vg" 2>/dev/null || true
        collected=$(awk '/Collected/ {print $NF}' "$WORK/callgrind.log")
        [ -n "$n" ] && [ "$n" -gt 0 ] && [ -n "$collected" ] && [ "$collected" -gt 0 ] ||
            die "callgrind: no count for $toggle ($n requests, $collected instructions)"
        # The checked request above counts too.
        COUNTED=$(( collected / (n + 1) ))
    }
    count_handler '*PortalApp*process_new_http*' "http://127.0.0.1:$FRONT_GH/"
    FA_COUNT=$COUNTED
    count_handler '*Gateway*request_filter*' "http://127.0.0.1:$PROXY/"
    HTTP_COUNTS="$FA_COUNT $COUNTED"
    start_gatehouse
fi

# --- the table ---------------------------------------------------------------------------
python3 - "$WORK" "$RUNS" <<EOF
import os, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def rows(name):
    with open(os.path.join(work, name + ".runs")) as f:
        return [[float(x) for x in line.split()] for line in f if line.strip()]
R = {n: rows(n) for n in "app hop fa-cookie fa-401 proxy fa-rotating fa-quiet fa-flood".split()}
med = lambda xs: statistics.median(xs)
def col(name, i): return med([r[i] for r in R[name]])
def ratio(a, b, i):
    """The median over rounds of a's figure i over b's, each pair from one round."""
    return med([x[i] / y[i] for x, y in zip(R[a], R[b])])
def verdict(ok): return "met" if ok else "NOT MET"
line = "%-46s %8s %8s %8s %8s   %s"
print()
print("gatehouse benchmark: %d cores, one nginx with ${NGINX_WORKERS} workers, wrk -t${THREADS} -c${CONNECTIONS}, %d interleaved rounds of ${DURATION} s, medians"
      % (os.cpu_count(), runs))
print(line % ("case", "req/s", "p50 ms", "p90 ms", "p99 ms", "against its limit (same rounds)"))
print(line % ("-" * 46, "-" * 8, "-" * 8, "-" * 8, "-" * 8, "-" * 40))
def show(label, name, note=""):
    print(line % (label, "%.0f" % col(name, 0), "%.3f" % col(name, 1), "%.3f" % col(name, 2), "%.3f" % col(name, 3), note))
show("nginx -> app (proxy_pass limit)", "app")
show("nginx auth_request -> stub 200 (hop limit)", "hop")
rps, p90, p99 = ratio("fa-cookie", "hop", 0), ratio("fa-cookie", "hop", 2), ratio("fa-cookie", "hop", 3)
show("nginx auth_request -> gatehouse, session", "fa-cookie",
     "%.2fx hop req/s (>= 0.85x: %s)" % (rps, verdict(rps >= 0.85)))
print(line % ("", "", "", "", "", "p90 %.2fx hop (<= 1.5x: %s); p99 %.2fx hop (<= 2x: %s)"
      % (p90, verdict(p90 <= 1.5), p99, verdict(p99 <= 2))))
show("nginx auth_request -> gatehouse, no cookie", "fa-401", "%.2fx hop req/s" % ratio("fa-401", "hop", 0))
px = ratio("proxy", "app", 0)
conns = [int(x) for x in open(os.path.join(work, "proxy.upstream-connections")).read().split()]
show("gatehouse proxy mode -> app, session", "proxy", "%.2fx nginx proxy_pass (>= 0.8x: %s)" % (px, verdict(px >= 0.8)))
print(line % ("", "", "", "", "", "upstream connections opened per run: %s" % ", ".join(map(str, conns))))
show("forward-auth, ${ROTATE} of ${SESSIONS} sessions", "fa-rotating", "%.2fx one session" % ratio("fa-rotating", "fa-cookie", 0))
show("forward-auth, quiet (paired with the flood)", "fa-quiet")
fl = ratio("fa-flood", "fa-quiet", 3)
show("forward-auth under a login flood", "fa-flood", "p99 %.2fx quiet (<= 1.5x: %s)" % (fl, verdict(fl <= 1.5)))
flood_rps = [float(l.split()[1]) for l in open(os.path.join(work, "flood.out")) if l.startswith("Requests/sec")]
logins = [list(map(float, l.split())) for l in open(os.path.join(work, "flood-logins.runs")) if l.strip()]
done, busy, failed = (sum(l[i] for l in logins) for i in range(3))
worst = max(l[3] for l in logins)
print(line % ("", "", "", "", "", "flood %.0f tries/s; real logins meanwhile: %d done, %d told busy, %d failed or hung; slowest %.0f ms"
      % (med(flood_rps), done, busy, failed, worst)))
print()
mib = lambda kib: "%.1f MiB" % (kib / 1024)
idle, after_logins, after_load = int("$RSS_IDLE"), int("$RSS_LOGINS"), int("$RSS_AFTER_LOAD")
print("memory (gatehouse resident, ${SESSIONS} sessions in the store)")
print("  idle                                   %10s" % mib(idle))
grown = (after_logins - idle) / 1024
print("  after ${LOGINS} logins (slowest ${LOGINS_MAX} ms)        %10s   +%.1f MiB over idle (<= 30 MiB: %s)"
      % (mib(after_logins), grown, verdict(grown <= 30)))
print("  after every load case                  %10s" % mib(after_load))
soak = [int(x) for x in open(os.path.join(work, "soak.rss")).read().split()]
if len(soak) >= 4:
    settled = soak[len(soak) // 4]
    drift = (soak[-1] - settled) / 1024
    soak_logins = open(os.path.join(work, "soak-logins.out")).read().split()
    print("  soak of ${SOAK} s, every 10 s: %s" % " ".join("%.0f" % (k / 1024) for k in soak))
    print("  soak: %s logins, each signed out again (%s busy, %s failed), end %s, %+.1f MiB after the first quarter (flat, <= 5 MiB: %s)"
          % (soak_logins[0], soak_logins[1], soak_logins[2], mib(soak[-1]), drift, verdict(drift <= 5)))
print()
print("the check without the network (criterion, benches/check.rs, warm sled store)")
for entry in """$CHECK_TIMES""".strip().splitlines():
    name, time = entry.split("|")
    print("  %-44s %s" % (name, time))
if "$CALLGRIND":
    print("  instructions per forward-auth answer (callgrind): $CALLGRIND")
if "$HTTP_COUNTS":
    fa_ir, proxy_ir = "$HTTP_COUNTS".split()
    print("  over HTTP (callgrind, sha2 without SHA-NI under valgrind, the kernel not counted):")
    print("    instructions per check, pingora's reading and writing included  %s" % fa_ir)
    print("    instructions per proxied request in our two request filters     %s" % proxy_ir)
EOF

# --- PostgreSQL: three replicas on one database --------------------------------------
. "$ROOT/bench/postgres.sh"
