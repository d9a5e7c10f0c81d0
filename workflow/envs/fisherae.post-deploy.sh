#!/usr/bin/env bash
# Snakemake runs this inside the new environment from the workflow's working directory (the
# repository root): install fisherae from this checkout, its dependencies already in place.
set -euo pipefail
python -m pip install --no-deps -e .
