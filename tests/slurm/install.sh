#!/usr/bin/env bash
# Install a one-node SLURM (Debian's slurm-wlm: slurmctld, slurmd, client tools) and munge, if
# missing. Needs root and the Debian archive. Idempotent; daemons are not started here
# (tests/slurm/start.sh does that). Used by tests/test_slurm.py and .ci/run.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "tests/slurm/install.sh: installing slurm-wlm and munge needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' maintainer scripts from starting daemons: start.sh runs them itself.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
command -v slurmctld slurmd sbatch squeue munged
