#!/usr/bin/env bash
# A real single-node SLURM on this machine, from Debian's packages, to try profiles/slurm without a
# cluster (and for tests/test_slurm.py). Needs root (or sudo). Idempotent: running it twice is fine.
#
#   tools/slurm-test-cluster.sh up       install (if missing) and start (default)
#   tools/slurm-test-cluster.sh install  only install the Debian packages (slow part, ~25 s)
#   tools/slurm-test-cluster.sh start    write configs once, start missing daemons, wait until ready
#   tools/slurm-test-cluster.sh stop     stop the daemons this script started, by their process ids;
#                                        its slurm.conf then lets clients fail at once (no 9 s wait)
#   tools/slurm-test-cluster.sh status   exit 0 if every daemon runs and the node takes jobs
#
# Daemons: munged, mariadbd (accounting database, unix socket only), slurmdbd (so `sacct` works: the
# Snakemake SLURM executor polls it, and the test reads job records from it), slurmctld, slurmd.
# Each runs in the foreground of its own session; its pid is kept in $STATE (stop kills exactly those).
# Partition `debug`, account `vacancy`, cluster `vacancy`. Configs carry a marker line: a slurm.conf
# that this script did not write (a real cluster's) is never overwritten.
set -euo pipefail

STATE=/run/vacancy-slurm
LOGS=/var/log/slurm
MARK="# written by vacancy tools/slurm-test-cluster.sh"
PARTITION=debug
ACCOUNT=vacancy
CLUSTER=vacancy
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stop runs it backwards

log() { echo "slurm-test-cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  # Re-run the whole script as root when needed: every step touches /etc, /run or /var.
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "must run as root (no sudo available)"
    exec sudo -E bash "$0" "$@"
  fi
}

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_if_ours() {
  # write_if_ours PATH MODE OWNER <content on stdin>: refuse to clobber a config we did not write.
  local path=$1 mode=$2 owner=$3 tmp
  if [ -e "$path" ] && ! grep -qF "$MARK" "$path"; then
    die "$path exists and was not written by this script; not touching a real cluster's config"
  fi
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
}

write_configs() {
  local host mem
  host=$(hostname -s)
  # Leave 1 GiB to the OS and the daemons; jobs ask for mem_mb and SLURM schedules by it.
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( mem > 2048 ? mem - 1024 : mem ))
  mkdir -p /etc/slurm "$LOGS" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
  chown slurm:slurm "$LOGS" /var/lib/slurm/slurmctld
  write_if_ours /etc/slurm/slurm.conf 644 root:root <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$STATE/slurmctld.slurm.pid
SlurmdPidFile=$STATE/slurmd.slurm.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups in containers: track job processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# Keep each job's --comment (the Snakemake executor writes rule_<name>... there) in sacct.
AccountingStoreFlags=job_comment
# Finished jobs stay visible to squeue for 10 minutes (the plugin's squeue status mode needs it).
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  write_if_ours /etc/slurm/slurmdbd.conf 600 slurm:slurm <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/slurmdbd.slurm.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=vacancy-test-only
StorageLoc=slurm_acct_db
EOF
}

alive() {
  # alive NAME: the daemon this script started under NAME still runs (pid and program name match).
  local pidfile="$STATE/$1.pid" pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ]
}

launch() {
  # launch NAME CMD...: run CMD in the foreground of its own session, in the background, keep its pid.
  local name=$1; shift
  if alive "$name"; then return 0; fi
  log "starting $name"
  setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

wait_for() {
  # wait_for WHAT SECONDS CMD...: poll CMD until it succeeds.
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what not ready after ${secs}s (logs in $LOGS)"
}

node_idle() { sinfo -h -p "$PARTITION" -o %T | grep -qE '^(idle|mixed|allocated)'; }
dbd_up() { sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER"; }

setup_database() {
  mariadb -u root <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'vacancy-test-only';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

setup_accounts() {
  # The executor validates --account against sacctmgr: register the account and the users.
  local user
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -n list account format=account | grep -qw "$ACCOUNT" ||
    sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description=vacancy Organization=vacancy
  for user in root ${SUDO_USER:-}; do
    sacctmgr -n list assoc user="$user" format=account | grep -qw "$ACCOUNT" ||
      sacctmgr -i -Q add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT"
  done
}

start() {
  command -v slurmctld >/dev/null || die "SLURM is not installed: run '$0 install' first"
  mkdir -p "$STATE" "$LOGS" /run/munge /run/mysqld
  chown munge:munge /run/munge
  chown mysql:mysql /run/mysqld
  write_configs
  launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  wait_for munge 10 bash -c 'munge -n | unmunge'
  launch mariadbd /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock
  wait_for mariadb 30 mariadb-admin -u root ping
  setup_database
  launch slurmdbd /usr/sbin/slurmdbd -D
  wait_for slurmdbd 30 sacctmgr -n list cluster
  setup_accounts
  launch slurmctld /usr/sbin/slurmctld -D
  wait_for slurmctld 30 scontrol ping
  launch slurmd /usr/sbin/slurmd -D
  # A node left down by an earlier stop comes back; harmless when it is already up.
  sleep 1
  scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
  wait_for "node $(hostname -s)" 30 node_idle
  wait_for "cluster registration" 30 dbd_up
  log "ready: partition=$PARTITION account=$ACCOUNT ($(sinfo -h -o '%D node, %c cpus, %m MB'))"
}

stop() {
  local i name pid n
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[$i]}
    if alive "$name"; then
      pid=$(cat "$STATE/$name.pid")
      log "stopping $name (pid $pid)"
      kill -TERM "$pid"
      for ((n = 0; n < 80 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); n++)); do sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && { log "$name did not stop in 20 s; killing pid $pid"; kill -KILL "$pid"; }
    fi
    rm -f "$STATE/$name.pid"
  done
  clients_give_up_at_once
}

clients_give_up_at_once() {
  # With the controller stopped, a SLURM client retries for MessageTimeout - 1 seconds (9 s by
  # default) before it fails, and the Snakemake SLURM executor plugin runs `scontrol show config`
  # whenever Snakemake starts: every local snakemake command on this machine waited 9 s. A
  # stopped test cluster cannot answer anyway, so its slurm.conf gets MessageTimeout=1 (clients
  # fail in milliseconds) until `start` writes the full config again, before any daemon runs.
  local conf=/etc/slurm/slurm.conf
  [ -e "$conf" ] && grep -qF "$MARK" "$conf" || return 0
  { grep -v '^MessageTimeout=' "$conf"; echo "MessageTimeout=1"; } | write_if_ours "$conf" 644 root:root
}

status() {
  local name ok=0
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then echo "$name running (pid $(cat "$STATE/$name.pid"))"; else echo "$name not running"; ok=1; fi
  done
  [ $ok -eq 0 ] && node_idle
}

cmd=${1:-up}
case "$cmd" in
  install) as_root "$@"; install_packages ;;
  start) as_root "$@"; start ;;
  up) as_root "$@"; install_packages; start ;;
  stop) as_root "$@"; stop ;;
  status) status ;;
  *) die "usage: $0 [up|install|start|stop|status]" ;;
esac
