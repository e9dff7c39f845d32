#!/usr/bin/env bash
# A throw-away one-node Slurm cluster for tests: munge, MariaDB, slurmdbd, slurmctld and slurmd,
# every daemon on localhost, every file (config, state, logs, sockets, pid files) under one folder.
#
#   cluster.sh start DIR    configure and start; prints `export SLURM_CONF=DIR/slurm.conf`
#   cluster.sh stop DIR     stop the daemons started in DIR (by their pid files, newest first)
#   cluster.sh install      apt-get the Debian packages when they are missing (needs root)
#
# Needs root (the daemons run as root, so jobs of any user on this machine work). Installs
# nothing on `start`; ports are picked free at start, so two clusters can coexist. Only munged is
# shared: one already running on the standard socket is reused (and left running). Partitions: `low` (default) and `high`; a job in
# `high` preempts and requeues jobs of `low`. The node advertises CPUS (default 16) CPUs so that
# several 1-CPU jobs run at once on a small machine.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root to install them"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

free_ports() {  # N free TCP ports on localhost
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local t=0
    until "$@" >/dev/null 2>&1; do
        t=$((t + 1))
        [ $t -le $((limit * 5)) ] || { echo "cluster.sh: timed out waiting for $what" >&2; return 1; }
        sleep 0.2
    done
}

start() {
    local dir=$1
    [ "$(id -u)" -eq 0 ] || die "must run as root (the Slurm daemons run as root)"
    for b in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sacctmgr sinfo; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found; run: $0 install"
    done
    export PATH="/usr/sbin:$PATH"
    mkdir -p "$dir"/{mysql,state,spool,log,run}
    dir=$(cd "$dir" && pwd)
    local host; host=$(hostname -s)
    local ports; read -r -a ports <<<"$(free_ports 4)"
    local ctld_port=${ports[0]} slurmd_port=${ports[1]} dbd_port=${ports[2]} db_port=${ports[3]}
    local cpus=${CPUS:-16}

    # munge on its standard socket (Slurm's clients do not all honour AuthInfo=socket=...):
    # reuse a running munged, else start one as the munge user and stop it with the cluster
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        chmod 0755 /run/munge
        [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key missing (reinstall the munge package)"
        runuser -u munge -- munged --pid-file=/run/munge/munged.pid
        wait_for 10 munged sh -c "munge -n | unmunge"
        cp /run/munge/munged.pid "$dir/run/munged.pid"
    fi

    # MariaDB for slurmdbd: own datadir, socket and port, bound to 127.0.0.1
    mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=normal \
        --skip-test-db >"$dir/log/mariadb-install.log" 2>&1 || { cat "$dir/log/mariadb-install.log" >&2; exit 1; }
    mariadbd --no-defaults --user=root --datadir="$dir/mysql" --socket="$dir/run/mysql.sock" \
        --port="$db_port" --bind-address=127.0.0.1 --pid-file="$dir/run/mariadbd.pid" \
        --log-error="$dir/log/mariadbd.log" --innodb-buffer-pool-size=16M --skip-log-bin &
    wait_for 60 mariadbd mariadb --no-defaults -S "$dir/run/mysql.sock" -uroot -e "select 1"
    mariadb --no-defaults -S "$dir/run/mysql.sock" -uroot -e "
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

    cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 0600 "$dir/slurmdbd.conf"

    cat >"$dir/slurm.conf" <<EOF
ClusterName=scaling
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again only once its old credential has expired (before that slurmd
# refuses it: "Job credential revoked", and the job fails); 120 s by default, 10 s for tests
AuthInfo=cred_expire=10
# look at pending jobs every 2 s (default 60 s), so a requeued job starts soon after its hold
SchedulerParameters=sched_interval=2,bf_interval=2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=20000 State=UNKNOWN
PartitionName=low Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10
EOF
    export SLURM_CONF="$dir/slurm.conf"

    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster scaling >/dev/null
    slurmctld -c
    wait_for 30 slurmctld scontrol ping
    slurmd
    wait_for 60 "an idle node" sh -c "sinfo -h -N -o %t | grep -q idle"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

stop() {
    local dir=$1
    export SLURM_CONF="$dir/slurm.conf"
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        local pidfile="$dir/run/$name.pid"
        [ -f "$pidfile" ] || continue
        local pid; pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

case "${1:-}" in
    install) install_packages ;;
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
