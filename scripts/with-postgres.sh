#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL cluster: initdb in a temp dir, started on
# a free loopback port with trust authentication (no password prompts, no system
# service), and stopped and deleted when the command ends, however it ends. The
# command sees the cluster's admin URL in LANYARD_TEST_PG_URL; tests create a database
# of their own in it. The cluster offers TLS with a certificate from a throw-away CA
# (made with the openssl command-line tool; the servers themselves use rustls), whose
# certificate is in LANYARD_TEST_PG_CA: the suite's servers connect with
# sslmode=verify-full against it.
#   bash scripts/with-postgres.sh cargo test -p lanyard-e2e
set -euo pipefail

bin_dir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || { echo "PostgreSQL's server is not installed (scripts/install-test-deps.sh installs it)" >&2; exit 1; }
    echo "$d"
}
BIN=$(bin_dir)

# initdb and postgres refuse to run as root: run them as the postgres user then.
AS=()
if [ "$(id -u)" -eq 0 ]; then
    AS=(runuser -u postgres --)
fi

DIR=$(mktemp -d /tmp/lanyard-pg.XXXXXX)
chmod 755 "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -f "$DIR/log" ]; then
        echo "==> the PostgreSQL server's last errors:" >&2
        grep -A2 -E "ERROR|FATAL" "$DIR/log" | tail -n 60 >&2 || true
    fi
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT

"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U lanyard --auth=trust --encoding=UTF8 --no-sync >/dev/null
# Fast for tests: no fsync (the cluster is thrown away), room for the connections of
# many servers at once. Benchmarks set LANYARD_PG_DURABLE=1 for a production-like
# cluster (fsync and synchronous commit on, as PostgreSQL ships).
# TLS: a CA of its own and a certificate for 127.0.0.1 signed by it.
tls() {
    local ext
    ext=$(mktemp)
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$ext"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=Lanyard test CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -CAcreateserial -days 2 -extfile "$ext" -out "$DIR/server.crt" 2>/dev/null
    rm -f "$ext" "$DIR/server.csr" "$DIR/ca.key"
    chmod 600 "$DIR/server.key"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/server.key" "$DIR/server.crt"
    chmod 644 "$DIR/ca.crt"
}
tls
OPTS="-h 127.0.0.1 -p $PORT -k $DIR -c max_connections=400"
OPTS="$OPTS -c ssl=on -c ssl_cert_file=$DIR/server.crt -c ssl_key_file=$DIR/server.key"
if [ "${LANYARD_PG_DURABLE:-0}" != "1" ]; then
    OPTS="$OPTS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start -o "$OPTS" >/dev/null

export LANYARD_TEST_PG_URL="postgres://lanyard@127.0.0.1:$PORT/postgres"
export LANYARD_TEST_PG_CA="$DIR/ca.crt"
echo "==> PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (throw-away, $DIR)"
"$@"
