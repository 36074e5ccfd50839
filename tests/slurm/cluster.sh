#!/usr/bin/env bash
# A real one-node Slurm cluster on 127.0.0.1 (two fake GPUs with shards, real accounting), for
# the slurm tests.
#
#   tests/slurm/cluster.sh start    install what is missing, write configs, start every daemon
#   tests/slurm/cluster.sh stop     stop every daemon this script started, by pid
#   tests/slurm/cluster.sh status   print the node and accounting state
#
# All state (configs, pid files, logs, MariaDB data, Slurm state) lives in $SDNET_SLURM_DIR
# (default /tmp/sdnet-slurm). Nothing is written to /etc. Clients find the cluster through
# SLURM_CONF=$SDNET_SLURM_DIR/etc/slurm.conf; $SDNET_SLURM_DIR/cluster.env sets it, and the tests
# read it from there. Debian 12, run as root, no systemd needed.
set -euo pipefail

DIR=${SDNET_SLURM_DIR:-/tmp/sdnet-slurm}
CLUSTER=sdnet
PARTITION=${SDNET_SLURM_PARTITION:-gpu}
ACCOUNT=${SDNET_SLURM_ACCOUNT:-sdnet-test}
GPU_TYPE=testgpu
# Two fake GPUs (File= /dev/null and /dev/zero: Slurm tracks each by its file), each split into
# SHARDS_PER_GPU shards (gres/shard, Slurm >= 22.05) for several training jobs per GPU. A GPU is
# allocated either whole (gres/gpu) or as shards, never both at once.
GPU_FILES=(/dev/null /dev/zero)
SHARDS_PER_GPU=4
DB_PORT=${SDNET_SLURM_DB_PORT:-3316}
DB_PASS=sdnet-slurm-test
HOST=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
export SLURM_CONF=$DIR/etc/slurm.conf
DEFAULT_CONF=/etc/slurm/slurm.conf

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- packages ---------------------------------------------------------------------------------

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd the packages must not start their services; Debian images ship a
    # policy-rc.d that forbids it, add a temporary one where it is absent.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$added_policy" = 1 ] && rm -f "$policy"
    return 0
}

# --- pid helpers ------------------------------------------------------------------------------

# running PIDFILE NAME: true when the pid in PIDFILE is alive and its command is NAME.
running() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && grep -q "^$2" "/proc/$pid/comm"
}

# poll SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds; false after SECONDS.
poll() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll, and stop the script when it times out.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    poll "$seconds" "$@" || die "timed out after ${seconds}s waiting for $what"
}

# stop_pid PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
    local pid i
    running "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(tr -dc '0-9' <"$1")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$2 (pid $pid) ignored SIGTERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
    log "stopped $2 (pid $pid)"
}

# --- configuration ----------------------------------------------------------------------------

real_memory_mb() {
    awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo
}

write_configs() {
    local cpus mem
    cpus=$(nproc)
    [ "$cpus" -lt 4 ] && cpus=4 # config_overrides: a small CI box can still take 4-CPU jobs
    mem=$(real_memory_mb)
    local gpus=${#GPU_FILES[@]} file
    mkdir -p "$DIR"/{etc,run,log,state,spool,munge,mysql}
    cat >"$DIR/etc/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh: one node on 127.0.0.1, $gpus fake GPUs of $SHARDS_PER_GPU shards.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu,shard
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$DIR/munge/munge.socket
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu,gres/gpu:$GPU_TYPE,gres/shard
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$GPU_TYPE:$gpus,shard:$((gpus * SHARDS_PER_GPU)) State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    {
        echo "AutoDetect=off"
        for file in "${GPU_FILES[@]}"; do
            echo "NodeName=$HOST Name=gpu Type=$GPU_TYPE File=$file"
        done
        for file in "${GPU_FILES[@]}"; do
            echo "NodeName=$HOST Name=shard Count=$SHARDS_PER_GPU File=$file"
        done
    } >"$DIR/etc/gres.conf"
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
DbdAddr=127.0.0.1
DbdHost=$HOST
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
    cat >"$DIR/cluster.env" <<EOF
export SLURM_CONF=$DIR/etc/slurm.conf
DEFAULT_CONF=/etc/slurm/slurm.conf
export SDNET_SLURM_PARTITION=$PARTITION
export SDNET_SLURM_ACCOUNT=$ACCOUNT
export SDNET_SLURM_GPU_TYPE=$GPU_TYPE
export SDNET_SLURM_GPUS=$gpus
export SDNET_SLURM_SHARDS_PER_GPU=$SHARDS_PER_GPU
EOF
}

# link_default_conf: commands inside a job (the executor's `srun`) run with every SLURM_*
# variable cleared, SLURM_CONF included, so they read the default path: link it to ours.
link_default_conf() {
    local target
    target=$(readlink "$DEFAULT_CONF" 2>/dev/null || true)
    [ "$target" = "$SLURM_CONF" ] && return 0
    if [ -e "$DEFAULT_CONF" ] || [ -L "$DEFAULT_CONF" ]; then
        [ -z "$target" ] && die "$DEFAULT_CONF exists and is not ours; this machine has its own Slurm"
        [ -e "$target" ] && die "$DEFAULT_CONF links to $target, not to $SLURM_CONF"
    fi
    mkdir -p "$(dirname "$DEFAULT_CONF")"
    ln -sfn "$SLURM_CONF" "$DEFAULT_CONF"
}

unlink_default_conf() {
    [ "$(readlink "$DEFAULT_CONF" 2>/dev/null)" = "$SLURM_CONF" ] && rm -f "$DEFAULT_CONF"
    return 0
}

# --- daemons ----------------------------------------------------------------------------------

start_munge() {
    running "$DIR/munge/munged.pid" munged && return 0
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    chown munge:munge "$DIR/munge"
    chmod 0755 "$DIR/munge"
    runuser -u munge -- /usr/sbin/munged --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    wait_for 10 munged munge --socket="$DIR/munge/munge.socket" -n
    log "munged running"
}

mariadb_sql() {
    mariadb --no-defaults --socket="$DIR/mysql/mysqld.sock" -uroot -e "$1"
}

start_mariadb() {
    running "$DIR/run/mariadbd.pid" mariadbd && return 0
    if [ ! -d "$DIR/mysql/data/mysql" ]; then
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql/data" \
            --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    # setsid + nohup: the server must outlive this script and the shell that ran it.
    setsid nohup /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" \
        --socket="$DIR/mysql/mysqld.sock" --pid-file="$DIR/run/mariadbd.pid" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=64M \
        --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for 60 "MariaDB (see $DIR/log/mariadb.log)" mariadb_sql "SELECT 1"
    mariadb_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    log "MariaDB running on 127.0.0.1:$DB_PORT"
}

start_slurmdbd() {
    running "$DIR/run/slurmdbd.pid" slurmdbd && return 0
    slurmdbd
    wait_for 30 "slurmdbd (see $DIR/log/slurmdbd.log)" sacctmgr -n list cluster
    log "slurmdbd running"
}

# register_accounts: cluster, test account, and root as its user (idempotent).
register_accounts() {
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="sdnet slurm tests" Organization=sdnet >/dev/null
    sacctmgr -n -P list association user=root format=account | grep -qx "$ACCOUNT" ||
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    log "accounting: cluster $CLUSTER, account $ACCOUNT, user root"
}

start_slurmctld() {
    running "$DIR/run/slurmctld.pid" slurmctld && return 0
    slurmctld -i
    wait_for 30 "slurmctld (see $DIR/log/slurmctld.log)" scontrol ping
    log "slurmctld running"
}

start_slurmd() {
    running "$DIR/run/slurmd.pid" slurmd && return 0
    slurmd -N "$HOST"
    log "slurmd running"
}

node_state() {
    sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1
}

node_idle() {
    case "$(node_state)" in idle | mixed | allocated) return 0 ;; esac
    return 1
}

wait_node_idle() {
    local state
    state=$(node_state)
    case "$state" in
        down* | drain* | inval*)
            scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    if ! poll 60 node_idle; then
        scontrol show node "$HOST" >&2 || true
        die "node $HOST is '$(node_state)', not idle; see $DIR/log/slurmd.log"
    fi
    log "node $HOST is $(node_state); partition $PARTITION, account $ACCOUNT," \
        "gres $(sinfo -h -N -n "$HOST" -o %G | head -1)"
}

# --- commands ---------------------------------------------------------------------------------

start() {
    install_packages
    write_configs
    link_default_conf
    start_munge
    start_mariadb
    start_slurmdbd
    register_accounts
    start_slurmctld
    start_slurmd
    wait_node_idle
    log "ready; clients need: source $DIR/cluster.env"
}

no_jobs() {
    [ -z "$(squeue -h -o %i 2>/dev/null)" ]
}

cancel_all_jobs() {
    running "$DIR/run/slurmctld.pid" slurmctld || return 0
    local ids
    ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    [ -n "${ids// /}" ] || return 0
    log "cancelling jobs $ids"
    # shellcheck disable=SC2086
    scancel $ids 2>/dev/null || true
    poll 30 no_jobs || log "jobs still listed after 30 s: $(squeue -h -o %i | tr '\n' ' ')"
}

stop() {
    cancel_all_jobs
    stop_pid "$DIR/run/slurmd.pid" slurmd
    stop_pid "$DIR/run/slurmctld.pid" slurmctld
    stop_pid "$DIR/run/slurmdbd.pid" slurmdbd
    stop_pid "$DIR/run/mariadbd.pid" mariadbd
    stop_pid "$DIR/munge/munged.pid" munged
    unlink_default_conf
    # Clients must not point at a stopped cluster: the Slurm executor plugin, which Snakemake
    # imports on every call, waits ~9 s on a dead slurmctld (tests/slurm/conftest.py exports this
    # file's SLURM_CONF to the whole test session).
    rm -f "$DIR/cluster.env"
}

status() {
    scontrol ping
    sinfo -N -o "%N %T %G %c %m"
    sacctmgr -n list association format=cluster,account,user
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
