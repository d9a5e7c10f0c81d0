# GPU job slots. A rule that computes on a GPU where there is one holds one slot (`resources:
# gpu=1`); rules whose work is CPU work (data, latent's t-SNE and k-means, figures, tables,
# claims) hold none, so they run beside training. On one machine `--resources gpu=G` names the G
# GPUs, and each GPU has `jobs_per_gpu` slots (a config key; the device locks of fisherae.devices
# honour the same number), so up to G x jobs_per_gpu GPU jobs run at once. Under a cluster
# executor (SLURM) each GPU job gets a GPU of its own and the number is left as given.
JOBS_PER_GPU = config["jobs_per_gpu"]
GPUS = workflow.global_resources.get("gpu").value

if workflow.global_resources.get("_nodes").value is None and isinstance(GPUS, int) and JOBS_PER_GPU > 1:
    workflow.register_resource("gpu", GPUS * JOBS_PER_GPU)
    print(f"fisherae: {GPUS} GPU(s) x jobs_per_gpu {JOBS_PER_GPU} = {GPUS * JOBS_PER_GPU} GPU jobs at once")
