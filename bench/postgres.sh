# gatehouse benchmark, PostgreSQL part (#15): sourced by bench/run.sh after its own
# cases, with its functions (port, measure, run_case, row, ratio) and figures at hand.
# Skipped without Debian's postgresql, or with PG=0.
#
# Cases:
#   pg-cached      nginx auth_request -> one replica, one session (from the cache)
#   pg-uncached    the same replica restarted with cache_ttl = "0s", rotating over
#                  PG_SESSIONS sessions: a database read per request
#   pg-three       nginx upstream of three replicas (round robin), one session
#   revocation     while pg-three's load runs: sign out on one replica and time until
#                  the two others refuse the session (p50/p99 over REVOCATIONS)

PG_SESSIONS=${PG_SESSIONS:-20000}
REVOCATIONS=${REVOCATIONS:-50}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

if [ "${PG:-1}" = 0 ] || [ -z "$PG_BIN" ]; then
    echo
    echo "PostgreSQL cases skipped (PG=0, or Debian's postgresql is not installed)"
    return 0
fi

echo "starting PostgreSQL and three replicas..." >&2
stop_gatehouse
# The cluster lives under a directory of its own that the postgres user can enter (the
# bench's work directory is private). initdb refuses root: as root it runs as postgres.
PGDIR=$(mktemp -d /tmp/gatehouse-bench-pg.XXXXXX)
stop_postgres() {
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
}
trap 'stop_postgres; cleanup' EXIT
AS_PG=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PGDIR"
    AS_PG=(runuser -u postgres --)
fi
PGPORT=$(port)
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
PGURL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

REPLICA_PORTS=()
for i in 1 2 3; do
    p=$(port)
    REPLICA_PORTS+=("$p")
    cat > "$WORK/replica$i.toml" <<EOF
[server]
listen = "127.0.0.1:$p"
data_dir = "$WORK/replica$i"
log_level = "warn"
[portal]
url = "http://auth.bench.test/"
[session]
domain = "bench.test"
secure = false
secret = "bench-replicas-share-this-session-secret"
[access_control]
default_policy = "two_factor"
[storage]
backend = "postgres"
url = "$PGURL"
encryption_key = "bench-replicas-share-this-encryption-key"
EOF
done

echo "seeding $PG_SESSIONS sessions into PostgreSQL..." >&2
"$GH" --config "$WORK/replica1.toml" bench-seed --users 1000 --sessions "$PG_SESSIONS" --out "$WORK/pg-cookies.txt" >/dev/null
PG_COOKIE="gatehouse_session=$(head -n1 "$WORK/pg-cookies.txt")"

REPLICA_PIDS=()
for i in 1 2 3; do
    "$GH" --config "$WORK/replica$i.toml" serve 2>>"$WORK/replica$i.log" &
    REPLICA_PIDS+=($!)
    PIDS+=($!)
done
for p in "${REPLICA_PORTS[@]}"; do
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$p/api/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$p/api/health" >/dev/null || die "a replica did not start: $(tail -5 "$WORK"/replica*.log)"
done

FRONT_PG1=$(port); FRONT_PG3=$(port)
mkdir -p "$WORK/nginx-pg"
pg_front() {
    cat <<EOF
    server {
        listen 127.0.0.1:$1;
        location / {
            auth_request /auth;
            auth_request_set \$user \$upstream_http_remote_user;
            proxy_set_header Connection "";
            proxy_set_header Remote-User \$user;
            proxy_pass http://app;
        }
        location = /auth { internal; proxy_pass http://$2/api/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Connection ""; proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL http://panel.bench.test\$request_uri;
            proxy_set_header X-Original-Method \$request_method; }
    }
EOF
}
cat > "$WORK/nginx-pg/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx-pg/nginx.pid;
error_log $WORK/nginx-pg/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-pg/body; proxy_temp_path $WORK/nginx-pg/proxy;
    fastcgi_temp_path $WORK/nginx-pg/fcgi; uwsgi_temp_path $WORK/nginx-pg/uwsgi; scgi_temp_path $WORK/nginx-pg/scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$APP; keepalive 64; }
    upstream one_replica { server 127.0.0.1:${REPLICA_PORTS[0]}; keepalive 64; }
    upstream three_replicas {
        server 127.0.0.1:${REPLICA_PORTS[0]}; server 127.0.0.1:${REPLICA_PORTS[1]}; server 127.0.0.1:${REPLICA_PORTS[2]};
        keepalive 64;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
$(pg_front "$FRONT_PG1" one_replica)
$(pg_front "$FRONT_PG3" three_replicas)
}
EOF
"$NGINX" -p "$WORK/nginx-pg" -c "$WORK/nginx-pg/nginx.conf" &
PIDS+=($!)
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$FRONT_PG3/" && break
    sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $PG_COOKIE" "http://127.0.0.1:$FRONT_PG3/")
[ "$code" = 200 ] || die "a seeded session was refused by the replicas ($code)"

# Every request a session not asked about before: a read from the database each time.
cat > "$WORK/pg-rotate.lua" <<EOF
local cookies = {}
for line in io.lines("$WORK/pg-cookies.txt") do cookies[#cookies + 1] = "gatehouse_session=" .. line end
local i = 0
request = function()
    i = i % #cookies + 1
    return wrk.format("GET", "/", { ["Cookie"] = cookies[i] })
end
EOF

run_case pg-cached "http://127.0.0.1:$FRONT_PG1/" -H "Cookie: $PG_COOKIE"
run_case pg-three "http://127.0.0.1:$FRONT_PG3/" -H "Cookie: $PG_COOKIE"

echo "measuring revocation under load..." >&2
wrk -t1 -c"$CONNECTIONS" -d"$(( REVOCATIONS / 5 + 30 ))s" -H "Cookie: $PG_COOKIE" "http://127.0.0.1:$FRONT_PG3/" >/dev/null &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
sleep 1
# Each of REVOCATIONS sessions (from the end of the seeded list, so not the load's): asked
# about on every replica (cached there), signed out on the first replica with the
# logout form, then asked of the two others until both refuse it.
cat > "$WORK/revoke.py" <<'EOF'
import http.client, re, sys, time
ports = [int(p) for p in sys.argv[1:]]
conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports}
def ask(port, method, path, headers, body=None):
    c = conns[port]
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read().decode("utf-8", "replace")
def check(port, cookie):
    return ask(port, "GET", "/api/authz/auth-request", {
        "Cookie": "gatehouse_session=" + cookie,
        "X-Original-URL": "http://panel.bench.test/", "X-Original-Method": "GET"})[0]
delays = []
for cookie in sys.stdin.read().split():
    for p in ports:
        assert check(p, cookie) == 200, "a seeded session was refused"
    status, page = ask(ports[0], "GET", "/logout", {"Cookie": "gatehouse_session=" + cookie})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    status, _ = ask(ports[0], "POST", "/logout", {
        "Cookie": "gatehouse_session=" + cookie,
        "Content-Type": "application/x-www-form-urlencoded"}, "csrf=" + csrf)
    assert status == 303, "the logout was refused: %d" % status
    start = time.monotonic()
    waiting = set(ports[1:])
    while waiting:
        for p in list(waiting):
            if check(p, cookie) != 200:
                waiting.discard(p)
        assert time.monotonic() - start < 15, "a replica kept honouring a revoked session"
    delays.append((time.monotonic() - start) * 1000)
delays.sort()
pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
print("%.1f %.1f %.1f" % (pick(0.5), pick(0.99), delays[-1]))
EOF
REVOCATION=$(python3 "$WORK/revoke.py" "${REPLICA_PORTS[@]}" < <(tail -n "$REVOCATIONS" "$WORK/pg-cookies.txt"))
kill "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
read -r REVOKE_P50 REVOKE_P99 REVOKE_MAX <<< "$REVOCATION"

# Uncached: the first replica alone, restarted without a cache.
for pid in "${REPLICA_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
echo 'cache_ttl = "0s"' >> "$WORK/replica1.toml"
"$GH" --config "$WORK/replica1.toml" serve 2>>"$WORK/replica1.log" &
PIDS+=($!)
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:${REPLICA_PORTS[0]}/api/health" >/dev/null 2>&1 && break
    sleep 0.1
done
run_case pg-uncached "http://127.0.0.1:$FRONT_PG1/" -s "$WORK/pg-rotate.lua"

echo
row "PostgreSQL (three replicas, one database)" "req/s" "p50 ms" "p99 ms" "against"
row "--------------------------------------------" "----------" "---------" "---------" "-------------------------------"
row "nginx auth_request -> replica, cached" "${RPS[pg-cached]}" "${P50[pg-cached]}" "${P99[pg-cached]}" \
    "$(ratio "${RPS[pg-cached]}" "${RPS[fa-cookie]}") of sled (target >= 0.90x)"
row "nginx auth_request -> replica, uncached" "${RPS[pg-uncached]}" "${P50[pg-uncached]}" "${P99[pg-uncached]}" \
    "$(ratio "${RPS[pg-uncached]}" "${RPS[fa-cookie]}") of sled; a database read each"
row "nginx upstream of three replicas, cached" "${RPS[pg-three]}" "${P50[pg-three]}" "${P99[pg-three]}" \
    "$(ratio "${RPS[pg-three]}" "${RPS[hop]}") of the hop (same machine, 2 cores)"
row "revocation seen by the other replicas" "" "${REVOKE_P50}" "${REVOKE_P99}" \
    "target p99 <= 100 ms; worst ${REVOKE_MAX} ms of ${REVOCATIONS}, under load"
