#!/usr/bin/env bash
# Reference figures from real Dovecot for bench/imap_bench.py's login-heavy cycle and idle
# connections, measured on this machine with the same client code.
#
# It builds a private, throw-away Dovecot in a scratch directory (mktemp -d): IMAP on
# 127.0.0.1:$PORT and IMAPS on 127.0.0.1:$TLS_PORT with a self-signed certificate, Maildir
# mail, the users bench/imap_bench.py uses (load0..9@bench.test and idle@bench.test, password
# bench-password) in a passwd-file. Then it runs
#
#     bench/imap_bench.py --only cycle,idle --against 127.0.0.1:$PORT:$TLS_PORT:<master pid>
#
# (memory is the PSS of Dovecot's master and every process under it), and stops Dovecot.
# Dovecot runs with its defaults (login processes in high-security mode: one imap-login
# process per connection, which stays as the TLS proxy; mail_fsync = optimized), except the
# limits a thousand connections of one user need (process and client limits, and
# mail_max_userip_connections) and the imap_zlib plugin for COMPRESS=DEFLATE (RFC 4978).
#
# Run as root (Dovecot's master must be), after installing Debian's dovecot-imapd without
# letting Debian start the system-wide service on the standard ports:
#
#     printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
#     DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd
#     rm /usr/sbin/policy-rc.d
#
#     bash bench/dovecot_reference.sh [extra imap_bench.py arguments, e.g. --seconds 30]
#     PORT=3143 TLS_PORT=3993 LOGIN_MODE=security|performance bash bench/dovecot_reference.sh
#
# Nothing listens beyond loopback and no standard port (143/993) is bound.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-3143}
# LOGIN_MODE=performance: Dovecot's documented high-performance login mode (long-lived
# imap-login processes, one per core, each serving many connections) instead of the default.
LOGIN_MODE=${LOGIN_MODE:-security}
LOGIN_MODE_SETTINGS=""
if [ "$LOGIN_MODE" = performance ]; then
  LOGIN_MODE_SETTINGS="service_count = 0
  process_min_avail = $(nproc)"
fi
TLS_PORT=${TLS_PORT:-3993}
PYTHON=${PYTHON:-.venv/bin/python}
for port in "$PORT" "$TLS_PORT"; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is taken" >&2; exit 1; fi
done
command -v dovecot >/dev/null || { echo "dovecot is not installed (see the header)" >&2; exit 1; }

DIR=$(mktemp -d /tmp/dovecot-ref.XXXXXX)
chmod 755 "$DIR"
cleanup() {
  if [ -f "$DIR/run/master.pid" ]; then kill "$(cat "$DIR/run/master.pid")" 2>/dev/null || true; fi
  sleep 1
  rm -rf "$DIR"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
mkdir -p "$DIR/mail" "$DIR/run" "$DIR/state"
chown dovecot:dovecot "$DIR/mail"
: > "$DIR/users"
for user in idle@bench.test $(seq -f "load%g@bench.test" 0 9); do
  echo "$user:{PLAIN}bench-password::::::" >> "$DIR/users"
done

cat > "$DIR/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN $DIR/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$DIR/mail/%u
}
first_valid_uid = 1
mail_location = maildir:~/Maildir
default_process_limit = 3000
default_client_limit = 6000
default_vsz_limit = 0
mail_plugins = \$mail_plugins zlib
protocol imap {
  mail_plugins = \$mail_plugins imap_zlib
  mail_max_userip_connections = 100000
}
service imap-login {
  $LOGIN_MODE_SETTINGS
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $TLS_PORT
    ssl = yes
  }
}
service anvil {
  client_limit = 8000
}
EOF

ulimit -n "$(ulimit -Hn)"
dovecot -c "$DIR/dovecot.conf"
for _ in $(seq 50); do [ -f "$DIR/run/master.pid" ] && break; sleep 0.1; done
MASTER=$(cat "$DIR/run/master.pid")
echo "Dovecot $(dovecot --version), $LOGIN_MODE login mode (master pid $MASTER) on 127.0.0.1:$PORT and :$TLS_PORT"
"$PYTHON" bench/imap_bench.py --only cycle,idle --against "127.0.0.1:$PORT:$TLS_PORT:$MASTER" "$@"
