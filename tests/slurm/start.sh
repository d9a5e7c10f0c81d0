#!/usr/bin/env bash
# Start a private one-node SLURM cluster on this machine, as root, under DIR:
#   tests/slurm/start.sh DIR      (stop it with tests/slurm/stop.sh DIR)
# munged (own key and socket), slurmctld and slurmd with their own ports, state and logs, so
# nothing system-wide is touched. The node has two placeholder GPUs (GresTypes=gpu, Gres=gpu:2,
# gres.conf AutoDetect=off) and partitions `cpu` (default) and `gpu`, the names used by
# workflow/profiles/slurm. No cgroups (proctrack/linuxproc, task/none): works in a container.
# No accounting daemon: query jobs with squeue (MinJobAge keeps finished jobs for an hour).
# The configuration lives in DIR; /etc/slurm/{slurm,gres,cgroup}.conf become links to it, because
# the executor plugin's job step drops SLURM_CONF before its nested srun (stop.sh removes them).
# Refuses to run where /etc/slurm/slurm.conf is someone else's.
set -euo pipefail
dir=$(realpath -m "${1:?usage: start.sh DIR}")
[ "$(id -u)" = 0 ] || { echo "start.sh: must run as root" >&2; exit 1; }
mkdir -p "$dir"/{state/ctld,state/d,log,run,dev}
touch "$dir/fisherae-test-cluster"
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
port=${SLURM_TEST_PORT:-16817}

# munge: a fresh key and a private socket
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" status=none
chmod 0400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/run/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/run/munged.seed"

# Placeholder GPUs: character devices (like /dev/null) where mknod is allowed, so that slurmd
# maps them and jobs see CUDA_VISIBLE_DEVICES; plain files otherwise (still counted as gres).
for i in 0 1; do
    rm -f "$dir/dev/gpu$i"
    mknod "$dir/dev/gpu$i" c 1 3 2>/dev/null || touch "$dir/dev/gpu$i"
done
cat > "$dir/gres.conf" <<GRES
AutoDetect=off
NodeName=$host Name=gpu File=$dir/dev/gpu0
NodeName=$host Name=gpu File=$dir/dev/gpu1
GRES
cat > "$dir/cgroup.conf" <<CGROUP
CgroupPlugin=autodetect
IgnoreSystemd=yes
CGROUP
cat > "$dir/slurm.conf" <<CONF
ClusterName=fisherae-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/run/munge.socket
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/d
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF
mkdir -p /etc/slurm
for name in slurm gres cgroup; do
    link=/etc/slurm/$name.conf
    if [ -e "$link" ] || [ -L "$link" ]; then
        target=$(readlink "$link" || true)
        if [ -n "$target" ] && [ -f "$(dirname "$target")/fisherae-test-cluster" ]; then
            rm -f "$link"  # left by an earlier test cluster
        else
            echo "start.sh: $link exists and is not a test cluster's; not touching it" >&2
            exit 1
        fi
    fi
    ln -s "$dir/$name.conf" "$link"
done

slurmctld
slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in idle*|mixed*|allocated*) echo "slurm up: node $host $state"; exit 0 ;; esac
    sleep 1
done
echo "start.sh: the node did not come up (state: ${state:-none}); logs in $dir/log:" >&2
tail -n 20 "$dir"/log/*.log >&2 || true
exit 1
