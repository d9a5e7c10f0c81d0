# Fisher Auto-Encoders (Elkhalil et al., AISTATS 2021): Figures 1-6 and Table 1 as one DAG.
#   snakemake --cores 2                                   # embedded smoke data (config/smoke.yaml)
#   snakemake --cores all --configfile config/cpu.yaml    # real MNIST, CPU-sized
#   snakemake --profile workflow/profiles/slurm --configfile config/config.yaml   # the paper's setting
# Every rule calls `python -m fisherae ...` (docs/cli.md); this file only wires paths.
from snakemake.utils import min_version, validate

from fisherae.config import coerce_config, validate_config

min_version("9.0")

# A --configfile on the command line replaces this default instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/smoke.yaml"


# Numbers that reached the config as strings (`lr: 1e-3` in YAML 1.1, the items of
# `--config 'seeds=[0,1,2]'`) become numbers where the schema asks for one.
_coerced = coerce_config(dict(config))
config.clear()
config.update(_coerced)
# One schema (src/fisherae/schemas, linked from workflow/schemas): the package's check names the
# bad key plainly, and whether it came from a config file or from --config; Snakemake's fills
# in the defaults.
validate_config(config, " + ".join(map(str, workflow.configfiles)) or "config",
                command_line=dict(workflow.config_settings.config or {}))
validate(config, "workflow/schemas/config.schema.json")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    input:
        final_targets(),
    default_target: True


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/latent.smk"
include: "workflow/rules/sampling.smk"
include: "workflow/rules/fid.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/claims.smk"
