#!/usr/bin/env bash
# Stop the cluster started by tests/slurm/start.sh DIR: cancel its jobs, then stop slurmd,
# slurmctld and munged by their pid files (nothing else is signalled), and remove the
# /etc/slurm links to DIR.
dir=$(realpath -m "${1:?usage: stop.sh DIR}")
if [ -f "$dir/slurm.conf" ] && [ -f "$dir/run/slurmctld.pid" ]; then
    timeout 20 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 20); do
        [ -z "$(timeout 10 squeue -h -t running,completing,pending 2>/dev/null)" ] && break
        sleep 1
    done
fi
for daemon in slurmd slurmctld munged; do
    pidfile=$dir/run/$daemon.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
done
for name in slurm gres cgroup; do
    link=/etc/slurm/$name.conf
    [ "$(readlink "$link" 2>/dev/null)" = "$dir/$name.conf" ] && rm -f "$link"
done
exit 0
