#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on this machine, with HAProxy in front,
# for the tests (issue 19): Debian's mariadb-server and galera-4, SST by
# rsync, data under bin/galera, ports of its own (the standalone MariaDB on
# 3306 is left alone).
#
#   scripts/galera.sh up       start what is not running, wait until all three
#                              nodes are Synced, print the DSNs as export lines
#                              (stdout; progress goes to stderr)
#   scripts/galera.sh down     stop HAProxy and the nodes; no process is left
#   scripts/galera.sh status   say what runs and the cluster's size
#
# Both up and down are idempotent. A cold up (no node running) starts from
# fresh data directories: the tests create their own databases, and a fresh
# cluster never needs a grastate.dat edited to bootstrap.
#
# GALERA_DIR (default bin/galera) and GALERA_PORT_BASE (default 13300: the
# balancer there, the nodes' SQL ports 6 to 8 above it, their replication
# ports 1267 and up above it) let a second cluster run beside the first: the
# failover test kills a node of a cluster of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${GALERA_DIR:-$PWD/bin/galera}
NODES=(1 2 3)
BASE=${GALERA_PORT_BASE:-13300}
LB_PORT=$BASE
sql_port()  { echo $((BASE + 5 + $1)); }            # 13306 13307 13308
wsrep_port() { echo $((BASE + 1257 + 10 * $1)); }   # 14567 14577 14587
ist_port()  { echo $((BASE + 1258 + 10 * $1)); }    # 14568 14578 14588
sst_port()  { echo $((BASE + 1259 + 10 * $1)); }    # 14569 14579 14589
PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
UP_TIMEOUT=${GALERA_UP_TIMEOUT:-180}

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

log() { echo "galera: $*" >&2; }
die() { log "$*"; exit 1; }

node_dir() { echo "$DIR/node$1"; }
pid_of() { cat "$(node_dir "$1")/mariadbd.pid" 2>/dev/null || true; }
# alive pid name: the process is there and is what its pid file says (a
# node killed with SIGKILL leaves its pid file; the pid may be reused).
# /proc, not kill -0, which a user other than root cannot send to mysql's.
alive() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
running() { alive "$(pid_of "$1")" mariadbd; }
haproxy_pid() { cat "$DIR/haproxy.pid" 2>/dev/null || true; }
haproxy_running() { alive "$(haproxy_pid)" haproxy; }

# q node sql: one value, as root over the node's socket.
q() { mariadb --no-defaults -uroot -S "$(node_dir "$1")/mariadbd.sock" -N -B -e "$2" 2>/dev/null; }
wsrep() { q "$1" "SHOW GLOBAL STATUS LIKE '$2'" | cut -f2; }

gcomm() {
  local a=() n
  for n in "${NODES[@]}"; do a+=("127.0.0.1:$(wsrep_port "$n")"); done
  (IFS=,; echo "gcomm://${a[*]}")
}

write_cnf() {
  local n=$1 d; d=$(node_dir "$n")
  cat >"$d/my.cnf" <<EOF
[mysqld]
datadir=$d/data
socket=$d/mariadbd.sock
pid-file=$d/mariadbd.pid
log-error=$d/error.log
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
user=mysql
# small: three nodes share two cores with the standalone server and the tests
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
performance_schema=OFF
max_connections=300
character-set-server=utf8mb4
collation-server=utf8mb4_bin
# what Galera needs
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_flush_log_at_trx_commit=2
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=tokenservice_test_$BASE
wsrep_cluster_address=$(gcomm)
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$(wsrep_port "$n")
# evs.suspect_timeout: a node silent this long is dropped from the cluster;
# until then a crashed node holds every commit (and every causal read) on
# the others. 3 s rather than Galera's 5 s: nodes on one network, and a
# failover the replicas ride out in seconds (docs/scaling.md).
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(wsrep_port "$n");ist.recv_addr=127.0.0.1:$(ist_port "$n");gcache.size=64M;evs.suspect_timeout=PT3S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(sst_port "$n")
wsrep_slave_threads=2

[client]
socket=$d/mariadbd.sock
EOF
}

start_node() {
  local n=$1 d; d=$(node_dir "$n"); shift
  mkdir -p "$d/data"
  write_cnf "$n"
  rm -f "$d/mariadbd.sock" "$d/mariadbd.pid"
  $SUDO chown -R mysql:mysql "$d"
  # mariadbd (started as root) drops to mysql; the rsync SST runs as mysql too.
  # --defaults-file keeps /etc/mysql (the standalone server's) out of it.
  $SUDO setsid "$(command -v mariadbd)" --defaults-file="$d/my.cnf" "$@" \
    </dev/null >>"$d/stdout.log" 2>&1 &
  LAUNCHED=$!
}

# recovered_position n: the last position node n committed, read from its
# InnoDB logs (mariadbd --wsrep-recover), as systemd's galera_recovery does:
# a node that crashed has no position in grastate.dat, and without one it
# asks for a full SST; with it, the others send what it missed from their
# gcache (IST). Empty for a node that never ran.
recovered_position() {
  local d; d=$(node_dir "$1")
  [ -f "$d/data/grastate.dat" ] || return 0
  rm -f "$d/recover.log"
  $SUDO "$(command -v mariadbd)" --defaults-file="$d/my.cnf" --wsrep-recover \
    --log-error="$d/recover.log" </dev/null >/dev/null 2>&1 || return 0
  $SUDO sed -n 's/.*WSREP: Recovered position: *//p' "$d/recover.log" | tail -1
}

# wait_node n seconds: until node n is Synced; fails at once if it died.
wait_node() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    synced "$1" && return 0
    kill -0 "$LAUNCHED" 2>/dev/null || return 1
    sleep 0.25
  done
  return 1
}

wait_for() { # wait_for what seconds command...
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  return 1
}

synced() { [ "$(wsrep "$1" wsrep_local_state_comment)" = Synced ]; }
sized() { [ "$(wsrep "$1" wsrep_cluster_size)" = "${#NODES[@]}" ]; }
all_synced() { local n; for n in "${NODES[@]}"; do running "$n" && synced "$n" && sized "$n" || return 1; done; }

# The balancer's health check, what clustercheck does: a node takes queries
# only when it is Synced (wsrep_local_state 4). One that takes logins but
# is joining, a donor, or cut off from the majority (non-Primary, which
# answers every query with error 1047) is taken out of the rotation.
# HAProxy runs it with the server's address and port as $3 and $4.
write_haproxy_check() {
  cat >"$DIR/synced-check.sh" <<'EOF'
#!/bin/sh
state=$(mariadb --no-defaults --connect-timeout=1 -h"$3" -P"$4" -uhaproxy -N -B \
  -e "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'" 2>/dev/null | cut -f2)
[ "$state" = 4 ]
EOF
  chmod 755 "$DIR/synced-check.sh"
}

write_haproxy_cfg() {
  write_haproxy_check
  {
    cat <<EOF
global
    maxconn 2000
    # "show servers state" here says when a node is marked down
    stats socket "$DIR/haproxy.sock" mode 600 level admin
    external-check
    insecure-fork-wanted
defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 2s
    retries 2
    option redispatch
listen galera
    bind 127.0.0.1:$LB_PORT
    balance roundrobin
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command "$DIR/synced-check.sh"
EOF
    for n in "${NODES[@]}"; do
      echo "    server node$n 127.0.0.1:$(sql_port "$n") check inter 1s fall 2 rise 2"
    done
  } >"$DIR/haproxy.cfg"
}

print_env() {
  local dsns=() n
  for n in "${NODES[@]}"; do dsns+=("root@tcp(127.0.0.1:$(sql_port "$n"))/"); done
  echo "export TOKENSERVICE_TEST_GALERA_DSNS='$(IFS=,; echo "${dsns[*]}")'"
  echo "export TOKENSERVICE_TEST_GALERA_LB_DSN='root@tcp(127.0.0.1:$LB_PORT)/'"
}

up() {
  local start=$SECONDS n
  [ -r "$PROVIDER" ] || die "no Galera provider at $PROVIDER (apt-get install galera-4)"
  command -v mariadbd >/dev/null || die "no mariadbd (apt-get install mariadb-server)"
  command -v haproxy >/dev/null || die "no haproxy (make galera-up installs it)"
  command -v rsync >/dev/null || die "no rsync (the SST method; apt-get install rsync)"
  mkdir -p "$DIR"

  local any=0
  for n in "${NODES[@]}"; do running "$n" && any=1; done
  if [ $any = 0 ]; then
    log "cold start: fresh data directories in $DIR"
    for n in "${NODES[@]}"; do $SUDO rm -rf "$(node_dir "$n")"; done
    mkdir -p "$(node_dir 1)/data"
    $SUDO chown -R mysql:mysql "$(node_dir 1)"
    mariadb-install-db --no-defaults --user=mysql --datadir="$(node_dir 1)/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$(node_dir 1)/install.log" 2>&1 ||
      die "mariadb-install-db failed: see $(node_dir 1)/install.log"
    log "bootstrapping node1"
    start_node 1 --wsrep-new-cluster
    wait_node 1 60 || die "node1 did not bootstrap: see $(node_dir 1)/error.log"
    # root over TCP without a password, as on the standalone server; haproxy's
    # synced-check.sh logs in as a user with no rights.
    q 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
         CREATE USER IF NOT EXISTS 'haproxy'@'127.0.0.1';
         CREATE DATABASE IF NOT EXISTS test;" || die "creating the users on node1 failed"
  fi
  local pos
  for n in "${NODES[@]}"; do
    if ! running "$n"; then
      pos=$(recovered_position "$n")
      log "starting node$n (joining${pos:+ from $pos})"
      start_node "$n" ${pos:+"--wsrep-start-position=$pos"}
      # one joiner at a time: a donor serves one SST
      wait_node "$n" 120 || die "node$n did not join: see $(node_dir "$n")/error.log"
    fi
  done
  wait_for "the cluster" "$UP_TIMEOUT" all_synced || { status >&2; die "the cluster did not reach ${#NODES[@]} Synced nodes"; }

  if ! haproxy_running; then
    write_haproxy_cfg
    haproxy -f "$DIR/haproxy.cfg" -D -p "$DIR/haproxy.pid" </dev/null >>"$DIR/haproxy.log" 2>&1 ||
      die "haproxy did not start: see $DIR/haproxy.log"
  fi
  wait_for "haproxy" 20 mariadb --no-defaults -h127.0.0.1 -P"$LB_PORT" -uroot -e 'SELECT 1' >/dev/null 2>&1 ||
    die "nothing answers through haproxy on $LB_PORT"
  log "up in $((SECONDS - start)) s: ${#NODES[@]} nodes Synced, haproxy on 127.0.0.1:$LB_PORT"
  print_env
}

down() {
  local n p
  if haproxy_running; then $SUDO kill "$(haproxy_pid)" || true; fi
  rm -f "$DIR/haproxy.pid"
  # the joiners first, node1 last: it is then the one safe to bootstrap from
  for n in 3 2 1; do
    running "$n" || continue
    p=$(pid_of "$n")
    $SUDO kill "$p" || true
    wait_for "node$n" 60 eval "! alive $p mariadbd" || { log "node$n did not stop; killing it"; $SUDO kill -9 "$p" || true; }
  done
  # an rsync daemon an interrupted SST left behind
  for n in "${NODES[@]}"; do
    p=$(cat "$(node_dir "$n")/data/rsync_sst.pid" 2>/dev/null || true)
    [ -n "$p" ] && $SUDO kill "$p" 2>/dev/null || true
  done
  log "down"
}

status() {
  local n
  for n in "${NODES[@]}"; do
    if running "$n"; then
      echo "node$n: running (pid $(pid_of "$n")), $(wsrep "$n" wsrep_local_state_comment), cluster size $(wsrep "$n" wsrep_cluster_size), 127.0.0.1:$(sql_port "$n")"
    else
      echo "node$n: stopped"
    fi
  done
  if haproxy_running; then echo "haproxy: running (pid $(haproxy_pid)), 127.0.0.1:$LB_PORT"; else echo "haproxy: stopped"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
