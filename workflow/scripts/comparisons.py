"""Snakemake script (rule compare_variants): runs.csv -> comparisons.csv.

Every variant against its row's constant-depth variant: Welch's t-test, 95 % interval, Holm.
input.runs; output.comparisons; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    report.write_comparisons(snakemake.input.runs, snakemake.output.comparisons)
    report.check_written([snakemake.output.comparisons])
