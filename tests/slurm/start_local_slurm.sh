#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost, for tests/test_slurm.py and .ci/run.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get (needs root),
# writes /etc/slurm/slurm.conf for a single node called "localhost" sized from this
# machine, starts munged, slurmctld and slurmd directly (no systemd is assumed), and
# only returns 0 once `sinfo` shows the node idle and a trivial srun and sbatch job
# have completed. Anything else exits non-zero with the daemon logs on stderr, so a
# broken cluster fails CI loudly instead of turning into skipped tests.
#
# Idempotent: rerunning it on a healthy cluster only re-checks it; a changed
# slurm.conf or a dead daemon gets the daemons restarted.
#
# Stop everything again with tests/slurm/stop_local_slurm.sh.
set -euo pipefail

readonly SLURM_CONF=/etc/slurm/slurm.conf
readonly LOG_DIR=/var/log/slurm
readonly CTLD_LOG=$LOG_DIR/slurmctld.log
readonly SLURMD_LOG=$LOG_DIR/slurmd.log
readonly CTLD_PID=/run/slurmctld.pid
readonly SLURMD_PID=/run/slurmd.pid
readonly NODE=localhost
# How long to wait for the node to turn idle and for each smoke-test job.
readonly WAIT_SECONDS=${SLURM_START_TIMEOUT:-90}

say() { echo "[start_local_slurm] $*" >&2; }

die() {
    {
        echo
        echo "################################################################"
        echo "## LOCAL SLURM CLUSTER FAILED TO START: $*"
        echo "################################################################"
        for log in "$CTLD_LOG" "$SLURMD_LOG" /var/log/munge/munged.log; do
            if [[ -f $log ]]; then
                echo "---- last lines of $log ----"
                tail -n 40 "$log"
            fi
        done
        echo "---- sinfo ----"
        sinfo -N -l 2>&1 || true
        echo "---- scontrol show node $NODE ----"
        scontrol show node "$NODE" 2>&1 || true
    } >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sinfo munged mungekey; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get may hold the dpkg lock (e.g. a parallel install step): wait for it.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
    for cmd in slurmctld slurmd sinfo munged mungekey; do
        command -v "$cmd" >/dev/null || die "$cmd still missing after apt-get install"
    done
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    say "starting munged"
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey -c -k /etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    # A munged killed without cleanup leaves its socket/pid behind and refuses to start.
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "munged does not answer (munge -n | unmunge fails)"
}

write_slurm_conf() {
    # Size the node from what slurmd itself detects, so slurmctld never marks it
    # invalid; keep 1 GiB of memory back for the daemons and the test driver.
    local detected cpus real_mem
    detected=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
    real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    [[ -n $cpus && -n $real_mem ]] || die "cannot parse 'slurmd -C' output: $detected"
    real_mem=$((real_mem > 2048 ? real_mem - 1024 : real_mem))

    mkdir -p /etc/slurm "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by glmmshrink tests/slurm/start_local_slurm.sh: a one-node test cluster.
ClusterName=glmmshrink-test
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups in containers/VMs like CI's: track processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd: sacct cannot work, so Snakemake must query squeue for job states.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for this long; the Snakemake SLURM plugin
# needs this to be well above its status-check interval to trust squeue.
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $SLURM_CONF ]] && cmp -s "$tmp" "$SLURM_CONF"; then
        rm -f "$tmp"
        return 1 # unchanged
    fi
    say "writing $SLURM_CONF (CPUs=$cpus RealMemory=$real_mem)"
    mv "$tmp" "$SLURM_CONF"
    chmod 0644 "$SLURM_CONF"
    return 0 # changed
}

# True if the pid in pidfile $1 is a live (not zombie) process named $2: after an unclean
# stop the pidfile may be stale, or its pid reused by something else.
pid_alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -r /proc/$pid/stat && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]]
}

stop_daemon() {
    local pidfile=$1 name=$2
    if pid_alive "$pidfile" "$name"; then
        kill "$(cat "$pidfile")"
        for _ in $(seq 20); do
            pid_alive "$pidfile" "$name" || break
            sleep 0.5
        done
    fi
    rm -f "$pidfile"
}

start_slurm() {
    local conf_changed=$1
    if [[ $conf_changed == yes ]]; then
        stop_daemon "$SLURMD_PID" slurmd
        stop_daemon "$CTLD_PID" slurmctld
    fi
    if ! pid_alive "$CTLD_PID" slurmctld; then
        say "starting slurmctld"
        slurmctld || die "slurmctld exited with status $?"
    fi
    if ! pid_alive "$SLURMD_PID" slurmd; then
        say "starting slurmd"
        # The machine's hostname is not "localhost": tell slurmd which node it is.
        slurmd -N "$NODE" || die "slurmd exited with status $?"
    fi
}

wait_for_idle_node() {
    local state=""
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
        case $state in
            idle | mixed | allocated) return 0 ;;
            down* | drain* | fail*)
                # e.g. left down by an earlier unclean stop: put it back in service.
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
                ;;
        esac
        sleep 1
    done
    die "node $NODE is not idle after ${WAIT_SECONDS}s (state: '${state:-no answer}')"
}

smoke_test() {
    local out
    out=$(timeout "$WAIT_SECONDS" srun -N 1 -n 1 -t 1 echo srun-ok 2>&1) ||
        die "trivial 'srun echo' did not complete: $out"
    [[ $out == *srun-ok* ]] || die "trivial srun gave unexpected output: $out"
    local dir
    dir=$(mktemp -d)
    out=$(cd "$dir" && timeout "$WAIT_SECONDS" sbatch --wait -t 1 -o "$dir/out" \
        --wrap 'echo sbatch-ok' 2>&1) || die "trivial 'sbatch --wait' did not complete: $out"
    grep -q sbatch-ok "$dir/out" || die "trivial sbatch job wrote no output: $(cat "$dir/out" 2>&1)"
    rm -rf "$dir"
}

install_packages
start_munge
if write_slurm_conf; then conf_changed=yes; else conf_changed=no; fi
start_slurm "$conf_changed"
wait_for_idle_node
smoke_test
say "SLURM is up: $(sinfo -h -N -o '%N %T CPUs=%c Mem=%m')"
