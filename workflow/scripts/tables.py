"""Snakemake script (rule render_tables): runs.csv -> {summary,per_seed}.{tex,md} in one folder.

input.runs; output: any of those four files, all in one folder; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.table_paths)
    report.render_tables(snakemake.input.runs, out_dir)
    report.check_written(snakemake.output)
