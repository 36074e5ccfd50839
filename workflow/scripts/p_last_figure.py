"""Snakemake script (rule plot_p_last_sweep): runs.csv -> error_vs_p_last.{pdf,png}.

Test error against p_L, a line per survival rule, for every row that sweeps p_L.
input.runs; output: error_vs_p_last.pdf and .png, in one folder; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.p_last_figure_paths)
    report.plot_p_last_figure(snakemake.input.runs, out_dir)
    report.check_written(snakemake.output)
