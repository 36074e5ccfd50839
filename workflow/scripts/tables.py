"""Snakemake script (rule render_tables): runs.csv (+ comparisons.csv) -> {summary,per_seed}.{tex,md}.

input.runs, input.comparisons (optional: computed from runs.csv without it); output: any of
those four files, all in one folder; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.table_paths)
    comparisons = getattr(snakemake.input, "comparisons", None)
    report.render_tables(snakemake.input.runs, out_dir, comparisons)
    report.check_written(snakemake.output)
