# Recovery from a killed run. Snakemake's locks (.snakemake/locks) outlive a SIGKILL or a power loss
# and would stop every later run ("Directory cannot be locked ... --unlock"). Each run of this
# workflow holds a shared flock on .snakemake/fisherae-run.lock while it lives, which the kernel
# drops when the process dies, however it dies. A run that can lock that file exclusively is the
# only one alive here, so the Snakemake locks it finds were left by a killed run: it removes them
# and says so. (Where flock is not supported, nothing is removed and Snakemake's advice stands.)
# The rest of the recovery is the default profile's rerun-incomplete (workflow/profiles/default).
import contextlib
import fcntl
import os
from pathlib import Path

if workflow.is_main_process and not workflow.dryrun:
    os.makedirs(".snakemake", exist_ok=True)
    RUN_LOCK = open(".snakemake/fisherae-run.lock", "a")
    try:
        fcntl.flock(RUN_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
        STALE_LOCKS = sorted(Path(".snakemake/locks").glob("*.lock"))
    except OSError:  # another run is alive here: its locks are real
        STALE_LOCKS = []
    for lock in STALE_LOCKS:
        lock.unlink()
    if STALE_LOCKS:
        print(f"fisherae: removed {len(STALE_LOCKS)} Snakemake lock(s) left by a run that was killed")
    with contextlib.suppress(OSError):
        fcntl.flock(RUN_LOCK, fcntl.LOCK_SH)
