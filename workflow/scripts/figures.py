"""Snakemake script (rule plot_figures): runs.csv + epochs.csv -> figures (.pdf and .png).

input.runs, input.epochs; output: {test_error_curves,final_error,epoch_time}.{pdf,png}, all in
one folder; params.log_scale (optional, default True): log-scaled error axis; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.figure_paths)
    log_scale = report.as_flag(getattr(snakemake.params, "log_scale", True), "params.log_scale")
    report.plot_figures(snakemake.input.runs, snakemake.input.epochs, out_dir, log_scale=log_scale)
    report.check_written(snakemake.output)
