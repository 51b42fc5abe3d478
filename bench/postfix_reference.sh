#!/usr/bin/env bash
# Reference figures from real Postfix (and Postfix -> Dovecot LMTP), measured on this machine.
#
# What it does: builds a private, throw-away Postfix instance and a private Dovecot instance in
# a scratch directory (mktemp -d), and times Postfix's own load generator, smtp-source, sending
# MESSAGES messages of SIZE bytes over SESSIONS concurrent SMTP sessions to one mailbox,
# user@bench.test. Two modes:
#
#   accept  Postfix accepts (smtpd -> cleanup -> queue file, fsynced before the 250 reply) but
#           delivers nothing: qmgr is disabled (master_service_disable = qmgr/unix), so mail
#           stays in the incoming queue -- the counterpart of `runmailserver --no-worker`.
#           With no qmgr, Postfix's inflow throttle (in_flow_delay, which slows smtpd down when
#           delivery falls behind) would hand out no tokens and stall every message for 1 s, so
#           this mode alone sets in_flow_delay = 0. ACCEPT_METHOD=defer instead keeps qmgr and
#           in_flow_delay and sets defer_transports = lmtp (qmgr moves each message to the
#           deferred queue, which costs the accept side some extra work).
#   e2e     Postfix delivers over LMTP (unix socket) to Dovecot, which writes Maildir files.
#           Timed from the first message sent until MESSAGES files are in new/ + cur/.
#           The time smtp-source takes is also printed (acceptance while delivering).
#   both    (default) accept, then e2e, each on a freshly built instance.
#
# Run as root (Postfix's master and Dovecot's must be):
#
#     bash bench/postfix_reference.sh [accept|e2e|both]
#     MESSAGES=2000 SESSIONS=10 SIZE=4096 PORT=2525 RECONNECT=0 ACCEPT_METHOD=noqmgr \
#         EXTRA_FLAGS= LOGDIR= DEADLINE=600 bash bench/postfix_reference.sh both
#
# Needs the Debian packages postfix (it ships /usr/sbin/smtp-source), dovecot-core and
# dovecot-lmtpd. Install them without letting Debian start the system-wide services on the
# standard ports, and without a system Postfix configuration:
#
#     printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
#     echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
#     DEBIAN_FRONTEND=noninteractive apt-get install -y postfix dovecot-core dovecot-lmtpd
#     rm /usr/sbin/policy-rc.d
#
# Everything listens on loopback only: smtpd on 127.0.0.1:$PORT (2525), Dovecot LMTP on a unix
# socket in the scratch directory; Dovecot opens no inet listener (protocols = lmtp). No
# standard port (25/110/143/...) is bound. Nothing can leave the machine: the only deliverable
# domain is bench.test, relaying is refused (reject_unauth_destination), and every other
# destination (bounces included) goes to Postfix's error transport, not to the smtp client.
#
# smtp-source speaks HELO (not EHLO) and has no command pipelining (its man page: "No SMTP
# command pipelining support"): every MAIL, RCPT, DATA and end-of-data waits for its reply.
# By default it is run with -d (keep each session open and send the next message on it, like
# bench/smtp_load.py's 10 sessions x 200 messages); RECONNECT=1 drops -d, so every message
# gets a new connection (2000 connections, 10 at a time).
#
# Durability and checks are Postfix's and Dovecot's defaults: cleanup fsyncs the queue file
# before smtpd answers 250, Dovecot's mail_fsync = optimized fsyncs the delivered file. smtpd
# runs its default checks (compatibility_level 3.6; unknown recipients rejected through
# virtual_mailbox_maps). NOTE: our own server additionally does SPF, DKIM and DMARC checks
# (DNS lookups, signature verification) on every message; this reference does none of that,
# so it is a lower bound on the work per message, not like-for-like.
#
# One message goes through untimed first (warm-up), as in bench/smtp_load.py. Besides msg/s,
# each mode prints the whole machine's CPU use over the timed window (from /proc/stat: busy
# ticks incl. steal, per message; smtp-source's own CPU is in it). Before each run, record
# a speed index for the VM (its speed varies up to 2x), e.g.
#     python3 -c "import time;t=time.perf_counter();s=0
#     for i in range(10_000_000): s+=i
#     print(time.perf_counter()-t)"
# Everything is torn down on exit (trap): postfix stop, dovecot stop, scratch directory removed.

set -euo pipefail

MODE=${1:-both}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}
SIZE=${SIZE:-4096}
PORT=${PORT:-2525}
RECONNECT=${RECONNECT:-0}
ACCEPT_METHOD=${ACCEPT_METHOD:-noqmgr}
DEADLINE=${DEADLINE:-600}   # seconds to wait for end-to-end delivery
LOGDIR=${LOGDIR:-}          # if set, Postfix's and Dovecot's logs are copied there
EXTRA_FLAGS=${EXTRA_FLAGS:-} # more smtp-source flags, e.g. -c (a running count on stdout)

case $MODE in accept | e2e | both) ;; *)
    echo "usage: $0 [accept|e2e|both]" >&2
    exit 2
    ;;
esac
case $PORT in 25 | 110 | 143 | 465 | 587 | 993 | 995)
    echo "refusing to bind a standard mail port ($PORT)" >&2
    exit 2
    ;;
esac
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for tool in postconf postfix smtp-source dovecot; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see the header)" >&2; exit 2; }
done
[[ -x /usr/lib/dovecot/lmtp ]] || { echo "missing dovecot-lmtpd" >&2; exit 2; }

SCRATCH=""

now() { date +%s.%N; }

# Busy and total CPU ticks of the whole machine so far (all cores, from /proc/stat): the
# timed window's difference says how much CPU the run took, smtp-source's included.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# $1 $2 = cpu_ticks before and after; prints the machine's CPU use over the window.
cpu_report() {
    awk -v a="$1" -v b="$2" -v m="$MESSAGES" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" 'BEGIN {
        split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; total = y[2] - x[2]
        printf "  machine CPU in that window: %.0f%% of %d cores busy, %.2f ms per message (all processes, smtp-source included)\n",
            100 * busy / total, cores, 1000 * busy / hz / m }'
}

# Processes of ours still running: any whose working directory or command line is inside
# the scratch directory (Postfix daemons chdir to the queue directory; Dovecot's to base_dir).
our_pids() {
    local p
    [[ -n $SCRATCH ]] || return 0
    for p in /proc/[0-9]*; do
        if [[ $(readlink "$p/cwd" 2>/dev/null) == "$SCRATCH"* ]] ||
            tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$SCRATCH"; then
            echo "${p#/proc/}"
        fi
    done
}

teardown() {
    [[ -n $SCRATCH && -d $SCRATCH ]] || return 0
    if [[ -f $SCRATCH/postfix/main.cf ]]; then
        postfix -c "$SCRATCH/postfix" stop >/dev/null 2>&1 || true
    fi
    if [[ -f $SCRATCH/dovecot/dovecot.conf ]]; then
        dovecot -c "$SCRATCH/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
    fi
    local pids
    for _ in $(seq 50); do
        pids=$(our_pids)
        [[ -z $pids ]] && break
        sleep 0.2
    done
    pids=$(our_pids)
    if [[ -n $pids ]]; then
        echo "killing leftover processes: $pids" >&2
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
    fi
    if [[ -n $LOGDIR ]]; then # keep the logs of the run for a look afterwards
        mkdir -p "$LOGDIR"
        cp "$SCRATCH/maillog" "$LOGDIR/maillog.$(basename "$SCRATCH")" 2>/dev/null || true
        cp "$SCRATCH/dovecot/dovecot.log" "$LOGDIR/dovecot.$(basename "$SCRATCH").log" 2>/dev/null || true
    fi
    rm -rf "$SCRATCH"
    SCRATCH=""
}
trap teardown EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

setup() { # $1 = accept | e2e
    local mode=$1
    if port_open "$PORT"; then
        echo "127.0.0.1:$PORT is already in use" >&2
        exit 1
    fi
    SCRATCH=$(mktemp -d /tmp/postfix-ref.XXXXXX)
    chmod 755 "$SCRATCH" # the postfix and nobody users must traverse it
    local pf=$SCRATCH/postfix dv=$SCRATCH/dovecot
    mkdir -p "$pf" "$SCRATCH/queue" "$SCRATCH/data" "$dv/run" "$dv/state" "$SCRATCH/mail"
    chown postfix:postfix "$SCRATCH/data"
    chown nobody:nogroup "$SCRATCH/mail"

    # --- Dovecot: LMTP only, on a unix socket; one static user, Maildir in the scratch dir.
    cat >"$dv/dovecot.conf" <<EOF
base_dir = $dv/run
state_dir = $dv/state
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = $dv/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:$SCRATCH/mail/%d/%n
# Postfix's virtual_mailbox_maps admits only user@bench.test; Dovecot trusts its LMTP client.
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$SCRATCH/mail/%d/%n
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
EOF
    if [[ $mode == e2e ]]; then
        dovecot -c "$dv/dovecot.conf"
        for _ in $(seq 100); do [[ -S $dv/run/lmtp ]] && break; sleep 0.1; done
        [[ -S $dv/run/lmtp ]] || { echo "dovecot did not start:" >&2; cat "$dv/dovecot.log" >&2; exit 1; }
    fi

    # --- Postfix: private instance, smtpd only on 127.0.0.1:$PORT.
    : >"$pf/main.cf"
    cp /etc/postfix/master.cf "$pf/master.cf"
    printf 'user@bench.test OK\n' >"$pf/vmailbox"
    local -a params=(
        "compatibility_level = 3.6"
        "queue_directory = $SCRATCH/queue"
        "data_directory = $SCRATCH/data"
        "mail_owner = postfix"
        "setgid_group = postdrop"
        "maillog_file = $SCRATCH/maillog"
        "maillog_file_prefixes = $SCRATCH"
        "inet_interfaces = 127.0.0.1"
        "inet_protocols = ipv4"
        "myhostname = mx.bench.test"
        "mydomain = bench.test"
        "myorigin = \$myhostname"
        "mydestination = localhost"
        "alias_maps ="
        "alias_database ="
        "mynetworks = 127.0.0.0/8"
        "smtpd_relay_restrictions = reject_unauth_destination"
        "virtual_mailbox_domains = bench.test"
        "virtual_mailbox_maps = texthash:$pf/vmailbox"
        "virtual_transport = lmtp:unix:$dv/run/lmtp"
        "default_transport = error:this benchmark delivers only to bench.test"
        "relay_transport = error:this benchmark delivers only to bench.test"
        "biff = no"
    )
    if [[ $mode == accept ]]; then
        if [[ $ACCEPT_METHOD == defer ]]; then
            params+=("defer_transports = lmtp")
        else
            params+=("master_service_disable = qmgr/unix" "in_flow_delay = 0")
        fi
    fi
    postconf -c "$pf" -e "${params[@]}"
    # No chroot (the Debian master.cf chroots most daemons into the queue directory, which
    # would need copies of /etc files there); replace the port-25 listener with a loopback one.
    postconf -c "$pf" -F '*/*/chroot = n'
    postconf -c "$pf" -MX smtp/inet
    postconf -c "$pf" -M "127.0.0.1:$PORT/inet = 127.0.0.1:$PORT inet n - n - - smtpd"
    postfix -c "$pf" check
    postfix -c "$pf" start >/dev/null 2>&1
    for _ in $(seq 100); do port_open "$PORT" && break; sleep 0.1; done
    port_open "$PORT" || { echo "postfix did not start:" >&2; cat "$SCRATCH/maillog" >&2; exit 1; }
    # A listener on a standard port would be a configuration mistake: refuse to go on.
    if ss -Hltnp | awk '{print $4}' | grep -Eq ':(25|110|143|465|587|993|995)$'; then
        echo "a standard mail port is open; stopping" >&2
        exit 1
    fi
}

# The reply to RCPT TO:<$1> in one plain SMTP conversation (no pipelining), e.g. "250 2.1.5 Ok".
rcpt_reply() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    read -r _ <&3
    printf 'HELO probe.sender.test\r\n' >&3
    read -r _ <&3
    printf 'MAIL FROM:<probe@sender.test>\r\n' >&3
    read -r _ <&3
    printf 'RCPT TO:<%s>\r\n' "$1" >&3
    read -r reply <&3
    printf 'RSET\r\nQUIT\r\n' >&3
    while read -r _ <&3; do :; done
    exec 3<&-
    echo "${reply%$'\r'}"
}

# No open relay, no unknown users: only user@bench.test gets a 250.
check_recipients() {
    local reply
    reply=$(rcpt_reply user@bench.test)
    [[ $reply == 250* ]] || { echo "user@bench.test refused: $reply" >&2; exit 1; }
    reply=$(rcpt_reply someone@example.com)
    [[ $reply == 5* ]] || { echo "relaying not refused: $reply" >&2; exit 1; }
    reply=$(rcpt_reply nobody@bench.test)
    [[ $reply == 5* ]] || { echo "unknown user not refused: $reply" >&2; exit 1; }
}

maildir_count() {
    local d=$SCRATCH/mail/bench.test/user
    local -a files=()
    shopt -s nullglob
    files=("$d"/new/* "$d"/cur/*)
    shopt -u nullglob
    echo "${#files[@]}"
}

queue_count() {
    find "$SCRATCH/queue/incoming" "$SCRATCH/queue/active" "$SCRATCH/queue/deferred" \
        "$SCRATCH/queue/hold" -type f 2>/dev/null | wc -l
}

source_flags() {
    local -a flags=(-s "$SESSIONS" -l "$SIZE" -f bench@sender.test -t user@bench.test)
    [[ $RECONNECT == 1 ]] || flags+=(-d)
    # shellcheck disable=SC2206
    flags+=($EXTRA_FLAGS)
    echo "${flags[@]}"
}

run_mode() { # $1 = accept | e2e
    local mode=$1 flags t0 t1 t2 c0 c1 c2 n warm
    setup "$mode"
    flags=$(source_flags)
    check_recipients
    # Warm-up: one message, untimed (for e2e, wait until it is in the mailbox).
    # shellcheck disable=SC2086
    smtp-source $flags -m 1 "127.0.0.1:$PORT"
    if [[ $mode == e2e ]]; then
        for _ in $(seq 600); do [[ $(maildir_count) -ge 1 ]] && break; sleep 0.1; done
        warm=$(maildir_count)
        [[ $warm -ge 1 ]] || { echo "warm-up message not delivered" >&2; tail "$SCRATCH/maillog" >&2; exit 1; }
    else
        warm=$(queue_count)
    fi
    echo "[$mode] smtp-source $flags -m $MESSAGES 127.0.0.1:$PORT"
    c0=$(cpu_ticks)
    t0=$(now)
    # shellcheck disable=SC2086
    smtp-source $flags -m "$MESSAGES" "127.0.0.1:$PORT"
    t1=$(now)
    c1=$(cpu_ticks)
    if [[ $mode == accept ]]; then
        n=$(($(queue_count) - warm))
        awk -v n="$n" -v m="$MESSAGES" -v a="$t0" -v b="$t1" -v s="$SESSIONS" -v z="$SIZE" 'BEGIN {
            printf "postfix accepted: %d messages in %.2f s = %.0f msg/s (%d sessions, %d B; %d queued)\n",
                m, b - a, m / (b - a), s, z, n }'
        cpu_report "$c0" "$c1"
        [[ $n -eq $MESSAGES ]] || { echo "expected $MESSAGES queue files, found $n" >&2; exit 1; }
    else
        while (($(maildir_count) - warm < MESSAGES)); do
            if awk -v a="$t0" -v b="$(now)" -v d="$DEADLINE" 'BEGIN { exit !(b - a > d) }'; then
                echo "timed out: $(($(maildir_count) - warm)) of $MESSAGES delivered" >&2
                break
            fi
            sleep 0.05
        done
        t2=$(now)
        c2=$(cpu_ticks)
        n=$(($(maildir_count) - warm))
        awk -v n="$n" -v m="$MESSAGES" -v a="$t0" -v b="$t1" -v c="$t2" -v s="$SESSIONS" -v z="$SIZE" 'BEGIN {
            printf "postfix+dovecot accepted (while delivering): %d messages in %.2f s = %.0f msg/s (%d sessions, %d B)\n",
                m, b - a, m / (b - a), s, z
            printf "postfix+dovecot delivered: %d of %d in Maildir after %.2f s = %.0f msg/s\n",
                n, m, c - a, n / (c - a) }'
        cpu_report "$c0" "$c2"
        [[ $n -ge $MESSAGES ]] || exit 1
    fi
    teardown
}

echo "Postfix $(postconf -d -h mail_version), Dovecot $(dovecot --version | cut -d' ' -f1)"
case $MODE in
accept) run_mode accept ;;
e2e) run_mode e2e ;;
both)
    run_mode accept
    run_mode e2e
    ;;
esac
