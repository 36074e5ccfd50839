"""Snakemake script (rule plot_heatmap): runs.csv -> error_heatmap.{pdf,png}.

Test error over depth and p_L (paper Fig. 8 right), for a grid that varies both.
input.runs; output: error_heatmap.pdf and .png, in one folder; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.heatmap_figure_paths)
    report.plot_heatmap_figure(snakemake.input.runs, out_dir)
    report.check_written(snakemake.output)
