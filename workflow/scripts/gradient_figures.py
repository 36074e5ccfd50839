"""Snakemake script (rule plot_gradients): runs.csv + epochs.csv + gradients.csv ->
gradient_magnitude.{pdf,png} (paper Fig. 7) and gradient_profile.{pdf,png}.

input.runs, input.epochs, input.gradients; output: those four files, in one folder; log[0].
"""
# ruff: noqa: F821  (Snakemake injects `snakemake`)

from sdnet import report

with report.script_logging(snakemake.log[0] if snakemake.log else None):
    out_dir = report.output_folder(snakemake.output, report.gradient_figure_paths)
    report.plot_gradient_figures(snakemake.input.runs, snakemake.input.epochs,
                                 snakemake.input.gradients, out_dir)
    report.check_written(snakemake.output)
