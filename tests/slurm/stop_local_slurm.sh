#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/start_local_slurm.sh.
#
# Cancels any jobs still queued, then stops slurmd, slurmctld and munged by the
# pids they recorded (never by process name, so other daemons are left alone).
set -uo pipefail

stop_pidfile() {
    local name=$1 pidfile=$2
    [[ -f $pidfile ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        echo "[stop_local_slurm] stopping $name (pid $pid)" >&2
        kill "$pid"
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

if command -v scancel >/dev/null && [[ -f /run/slurmctld.pid ]]; then
    scancel --user="$(id -un)" 2>/dev/null || true
fi
stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
