#!/usr/bin/env bash
# A real one-node Slurm (slurmctld, slurmd, munge) on this machine, for tests and trials.
#
#   slurm/local-cluster.sh up       install (Debian packages) if needed, configure, start;
#                                   exit code 3 only when the packages cannot be installed
#   slurm/local-cluster.sh status   print the node state; exit 0 when the node is usable
#   slurm/local-cluster.sh down     stop the daemons (configuration and state are kept)
#
# Idempotent and non-interactive. Needs root (it starts daemons and writes
# /etc/slurm/slurm.conf). State lives under $EMBER_SLURM_DIR (default /tmp/ember-slurm).
# No systemd is assumed: the daemons are started by hand, as on a container or CI host.
set -euo pipefail

DIR=${EMBER_SLURM_DIR:-/tmp/ember-slurm}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

log() { printf 'local-cluster: %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Exit code 3 means exactly this: the packages cannot be installed here (no apt, no
    # network, no such package). Callers may treat it as "no Slurm on this machine"; any
    # other failure is a real one.
    if [ "$(id -u)" -ne 0 ]; then
      log "cannot install ${missing[*]}: not root"
      exit 3
    fi
    if ! command -v apt-get >/dev/null; then
      log "cannot install ${missing[*]}: no apt-get on this machine"
      exit 3
    fi
    if ! apt-get update -qq ||
       ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
      log "cannot install ${missing[*]}: apt-get failed"
      exit 3
    fi
  fi
}

# The node is declared at least as large as the sbatch scripts of slurm/ ask for (4 tasks
# of 1 CPU and 2 GiB), with room for a second job: a test machine has 2 cores, and a
# request larger than every node pends forever (reason PartitionConfig) instead of
# failing. The tasks then share the real cores (ember's driver mostly waits); memory is
# not enforced (TaskPlugin=task/none), the executors' budgets follow the request.
MIN_CPUS=8
MIN_MEM_MB=$(( 8 * 1024 ))

write_config() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
  local cpus mem
  cpus=$(nproc)
  [ "$cpus" -ge "$MIN_CPUS" ] || cpus=$MIN_CPUS
  # slurmd -C reports RealMemory; keep some headroom so the node is never drained for it.
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( ${mem:-4000} * 9 / 10 ))
  [ "$mem" -ge "$MIN_MEM_MB" ] || mem=$MIN_MEM_MB
  cat > "$CONF.new" <<CONF
# Written by ember's slurm/local-cluster.sh: a one-node test cluster.
ClusterName=ember-local
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=10
# Use the node as declared below, not as slurmd finds the hardware (see MIN_CPUS).
SlurmdParameters=config_overrides
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
  if ! cmp -s "$CONF.new" "$CONF" 2>/dev/null; then
    mv "$CONF.new" "$CONF"
    log "wrote $CONF"
    CONFIG_CHANGED=1
  else
    rm -f "$CONF.new"
  fi
}
CONFIG_CHANGED=0

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  [ -f /etc/munge/munge.key ] || mungekey -c >/dev/null 2>&1 || mungekey --create >/dev/null
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force
    touch "$DIR/munged.ours"   # started here: `down` stops it again
    sleep 0.5
  fi
}

# Stops munged if `up` started it (one that was running before is left alone). It
# removes its socket as it exits, so no later client waits on a stale one.
stop_munge() {
  [ -f "$DIR/munged.ours" ] || return 0
  local pid
  pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  rm -f "$DIR/munged.ours"
}

node_state() { sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n 1; }

up() {
  install_packages
  [ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
  write_config
  # Daemons started with another configuration (an older checkout) keep the old node
  # size until restarted.
  if [ "$CONFIG_CHANGED" = 1 ] && { running "$DIR/slurmctld.pid" || running "$DIR/slurmd.pid"; }; then
    log "configuration changed: restarting the daemons"
    down
  fi
  start_munge
  if ! running "$DIR/slurmctld.pid"; then
    slurmctld -i >/dev/null 2>&1   # daemonises; -i ignores state from an older config
  fi
  if ! running "$DIR/slurmd.pid"; then
    slurmd >/dev/null 2>&1
  fi
  for _ in $(seq 1 60); do
    case "$(node_state)" in
      idle*|mix*|alloc*) log "up: node $HOST is $(node_state)"; return 0 ;;
      down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  log "the node did not become idle; see $DIR/log"
  exit 1
}

down() {
  for d in slurmd slurmctld; do
    if running "$DIR/$d.pid"; then
      kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 40); do
    if ! running "$DIR/slurmd.pid" && ! running "$DIR/slurmctld.pid"; then
      stop_munge
      log "down"
      return 0
    fi
    sleep 0.25
  done
  log "daemons still running after 10 s"
  exit 1
}

status() {
  local s
  s=$(node_state || true)
  echo "${s:-not running}"
  case "$s" in idle*|mix*|alloc*) return 0 ;; *) return 1 ;; esac
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
