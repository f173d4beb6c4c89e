#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/start_local_slurm.sh.
#
# Cancels any jobs still queued, then stops slurmd, slurmctld and munged by the pids
# they recorded, after checking each pid still belongs to that daemon (never by
# process name, so other daemons are left alone).
set -uo pipefail

# The pid in pidfile $1 if it is a live (not zombie) process named $2.
live_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -r /proc/$pid/stat && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]] || return 1
    echo "$pid"
}

stop_pidfile() {
    local name=$1 pidfile=$2 pid
    if pid=$(live_pid "$pidfile" "$name"); then
        echo "[stop_local_slurm] stopping $name (pid $pid)" >&2
        kill "$pid"
        for _ in $(seq 20); do
            live_pid "$pidfile" "$name" >/dev/null || break
            sleep 0.5
        done
        live_pid "$pidfile" "$name" >/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

if command -v scancel >/dev/null && live_pid /run/slurmctld.pid slurmctld >/dev/null; then
    scancel --user="$(id -un)" 2>/dev/null || true
fi
stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
