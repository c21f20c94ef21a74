#!/usr/bin/env bash
# Three gatehouse replicas on one PostgreSQL database behind nginx, all on this machine,
# as README "Several replicas" describes; then a walk through what they share: one
# login used through every replica, a revocation and a ban that every replica honours.
#
#   examples/replicas/try.sh          # needs: nginx, postgresql, curl (Debian packages)
#
# GH=path/to/gatehouse uses that binary instead of building one (tests/three_replicas.rs
# runs this script that way).
# Everything runs on loopback from a temporary directory and stops on Ctrl-C (or at
# the end with NO_WAIT=1). Ports: nginx on FRONT_PORT (8080), the replicas on
# REPLICA_PORTS ("9101 9102 9103"), the stand-in panel on PANEL_PORT (8082),
# PostgreSQL on a free one.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -x "$NGINX" ] || { echo "nginx is missing: apt-get install nginx" >&2; exit 1; }
[ -n "$PG_BIN" ] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

if [ -z "${GH:-}" ]; then
    echo "building gatehouse (release)..."
    (cd "$ROOT" && cargo build --release --quiet)
    GH="$ROOT/target/release/gatehouse"
fi

FRONT=${FRONT_PORT:-8080}
PANEL=${PANEL_PORT:-8082}
read -r -a RP <<< "${REPLICA_PORTS:-9101 9102 9103}"
WORK=$(mktemp -d /tmp/gatehouse-replicas.XXXXXX)
chmod 711 "$WORK"
PIDS=()
AS_PG=()
[ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --)
stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop EXIT

# --- PostgreSQL: a throwaway cluster (in production: your own, highly available) ------
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg"
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
echo "PostgreSQL runs on 127.0.0.1:$PGPORT"

# --- the keys every replica shares, and one configuration per replica -----------------
(umask 077; head -c 32 /dev/urandom | base64 > "$WORK/session.secret")
(umask 077; head -c 32 /dev/urandom | base64 > "$WORK/encryption.key")
for i in 1 2 3; do
    cat > "$WORK/replica$i.toml" <<EOF
[server]
listen = "127.0.0.1:${RP[$((i - 1))]}"
data_dir = "$WORK/replica$i"
log_level = "warn"
[portal]
url = "http://auth.example.test:$FRONT/"
[session]
domain = "example.test"
secure = false
secret_file = "$WORK/session.secret"
[access_control]
default_policy = "one_factor"
[storage]
backend = "postgres"
url = "postgres://postgres@127.0.0.1:$PGPORT/postgres"
encryption_key_file = "$WORK/encryption.key"
EOF
done

# The CLI talks to the database directly: one user, for all three.
PASSWORD="try the replicas"
echo "$PASSWORD" | "$GH" --config "$WORK/replica1.toml" user add ann --password-stdin --email ann@example.test >/dev/null 2>&1
for i in 1 2 3; do
    "$GH" --config "$WORK/replica$i.toml" serve 2>>"$WORK/replica$i.log" &
    PIDS+=($!)
done
for i in 1 2 3; do
    health="http://127.0.0.1:${RP[$((i - 1))]}/api/health"
    for _ in $(seq 100); do curl -fs "$health" >/dev/null && break; sleep 0.1; done
    curl -fs "$health" >/dev/null || { tail "$WORK/replica$i.log"; exit 1; }
done
echo "three replicas run on 127.0.0.1, ports ${RP[*]}"

# --- nginx: the shipped example, its gatehouse address an upstream of the three -------
mkdir -p "$WORK/nginx"
{
    echo "upstream gatehouse { server 127.0.0.1:${RP[0]}; server 127.0.0.1:${RP[1]}; server 127.0.0.1:${RP[2]}; }"
    sed -e 's/example\.com/example.test/g' \
        -e 's#127\.0\.0\.1:9091#gatehouse#g' \
        -e "s#127\\.0\\.0\\.1:8081#127.0.0.1:$PANEL#g" \
        -e "s/listen 80;/listen 127.0.0.1:$FRONT;/" "$ROOT/examples/nginx/gatehouse.conf"
    # The panel: answers with the user gatehouse vouched for.
    echo "server { listen 127.0.0.1:$PANEL; location / { return 200 \"the panel, for \$http_remote_user\\n\"; } }"
} > "$WORK/nginx/site.conf"
cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
    include $WORK/nginx/site.conf;
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$FRONT/" && break; sleep 0.1; done
echo "nginx runs on 127.0.0.1:$FRONT (auth.example.test and panel.example.test)"
echo

# --- the walk-through --------------------------------------------------------------------
HOSTS=(--resolve "auth.example.test:$FRONT:127.0.0.1" --resolve "panel.example.test:$FRONT:127.0.0.1")
JAR="$WORK/cookies.txt"
# Signs in through nginx (the form from one replica, the post to the next), or straight
# at replica $2 when given; prints the status.
sign_in() {
    local password=$1 page csrf via=("${HOSTS[@]}")
    [ -n "${2:-}" ] && via=(--connect-to "auth.example.test:$FRONT:127.0.0.1:${RP[$(($2 - 1))]}")
    page=$(curl -s "${via[@]}" -c "$JAR" -b "$JAR" "http://auth.example.test:$FRONT/")
    csrf=$(grep -o 'name="csrf" value="[^"]*"' <<< "$page" | head -n1 | sed 's/.*value="//; s/"$//')
    curl -s -o /dev/null -w '%{http_code}' "${via[@]}" -c "$JAR" -b "$JAR" \
        --data-urlencode "csrf=$csrf" --data-urlencode "username=ann" --data-urlencode "password=$password" \
        "http://auth.example.test:$FRONT/login"
}
# The answer of replica $1 for the browser's session (asked the way nginx asks).
ask() {
    local session
    session=$(awk '$6 == "gatehouse_session" {print $7}' "$JAR")
    curl -s -o /dev/null -w '%{http_code}' -H "Cookie: gatehouse_session=$session" \
        -H "X-Original-URL: http://panel.example.test:$FRONT/" -H "X-Original-Method: GET" \
        "http://127.0.0.1:${RP[$(($1 - 1))]}/api/authz/auth-request"
}
each() { echo "    replica 1: $(ask 1)   replica 2: $(ask 2)   replica 3: $(ask 3)"; }

echo "1. ann signs in through nginx: $(sign_in "$PASSWORD") (303: signed in)"
echo "   the panel through nginx: $(curl -s "${HOSTS[@]}" -b "$JAR" "http://panel.example.test:$FRONT/")"
echo "   each replica, asked for her session (200: let in):"
each
echo
echo "2. revoked with the CLI, on the database (no replica asked):"
echo "   \$ gatehouse --config replica3.toml sessions revoke --user ann"
"$GH" --config "$WORK/replica3.toml" sessions revoke --user ann 2>/dev/null | sed 's/^/   /'
echo "   each replica, at once (401: sign in again):"
# The replicas hear of it within milliseconds; a loaded machine gets up to 2 s.
for _ in $(seq 40); do [ "$(ask 1)$(ask 2)$(ask 3)" = 401401401 ] && break; sleep 0.05; done
each
echo
echo "3. wrong passwords, one at each replica (max_retries = 3 bans at the third):"
for i in 1 2 3; do echo "   at replica $i: $(sign_in "wrong password" "$i")"; done
echo "   then the right password, at each replica (429: banned everywhere):"
echo "    replica 1: $(sign_in "$PASSWORD" 1)   replica 2: $(sign_in "$PASSWORD" 2)   replica 3: $(sign_in "$PASSWORD" 3)"
echo
if [ "${NO_WAIT:-0}" = 1 ]; then exit 0; fi
echo "Everything keeps running; try it in a browser with these lines in /etc/hosts:"
echo "    127.0.0.1 auth.example.test panel.example.test"
echo "then open http://panel.example.test:$FRONT/ (user ann, password \"$PASSWORD\", once the"
echo "ban has passed). Configurations and logs: $WORK. Ctrl-C stops everything."
wait
