"""Snakemake script (rule aggregate_metrics): finished run folders -> runs.csv, epochs.csv,
gradients.csv.

input.summaries: <run folder>/summary.json of every run; output.runs, output.epochs,
output.gradients (optional); log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    gradients = getattr(snakemake.output, "gradients", None)
    report.aggregate(report.as_paths(snakemake.input.summaries), snakemake.output.runs,
                     snakemake.output.epochs, gradients)
    report.check_written([snakemake.output.runs, snakemake.output.epochs,
                          *([gradients] if gradients else [])])
