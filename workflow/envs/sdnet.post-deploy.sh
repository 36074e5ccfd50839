#!/usr/bin/env bash
# Run by Snakemake inside the fresh conda environment, in the working directory (the repository
# root, where the Snakefile is): install sdnet itself, without touching the conda packages.
set -euo pipefail
if [ ! -f pyproject.toml ] || [ ! -d src/sdnet ]; then
    echo "sdnet.post-deploy.sh: run snakemake from the sdnet repository root" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e .
