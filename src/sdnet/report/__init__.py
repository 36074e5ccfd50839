"""Results people put in a paper: run folders -> tidy CSVs -> statistics, tables, figures.

Each step reads only the previous step's files, so Snakemake reruns only what changed:

- `aggregate` (aggregate.py): run folders -> runs.csv (one row per run), epochs.csv, gradients.csv
  (one row per run, epoch and residual block);
- `write_comparisons` (stats.py): runs.csv -> comparisons.csv, each variant against the row's
  constant-depth variant (Welch's t-test, 95 % interval, Holm over the file);
- `render_tables` (tables.py, styles.py): summary and per-seed tables, LaTeX and Markdown, the
  paper's numbers (paper.py) beside the matching rows;
- `plot_figures`, `plot_p_last_figure`, `plot_gradient_figures`, `plot_heatmap_figure`
  (figures/, a module per kind): PDF and PNG figures.

names.py says how every report names and orders data sets, networks and variants; which
figures and tables a grid makes is sdnet.grid.targets' decision (torch- and pandas-free, shared
with the workflow). `sdnet report ...` runs each step (the workflow's rules too). Every output is written atomically and
byte-for-byte deterministic for the same inputs; errors are percentages (0-100) everywhere.
"""

from sdnet.report.aggregate import aggregate, read_epochs, read_gradients, read_runs
from sdnet.report.figures import (
    FIGURES,
    GRADIENT_FIGURES,
    HEATMAP_FIGURE,
    SWEEP_FIGURE,
    figure_paths,
    gradient_figure_paths,
    heatmap_figure_paths,
    heatmap_panels,
    p_last_figure_paths,
    plot_epoch_time,
    plot_error_heatmap,
    plot_error_vs_p_last,
    plot_figures,
    plot_final_error,
    plot_gradient_figures,
    plot_gradient_magnitude,
    plot_gradient_profile,
    plot_heatmap_figure,
    plot_p_last_figure,
    plot_test_error_curves,
    sweep_rows,
)
from sdnet.report.names import dataset_name, network_name, variant_order
from sdnet.report.paper import PAPER_RESULTS, paper_result, paper_test_error
from sdnet.report.stats import (
    COMPARISON_COLUMNS,
    comparisons,
    holm,
    read_comparisons,
    welch,
    write_comparisons,
)
from sdnet.report.styles import latex_escape
from sdnet.report.tables import TABLES, render_tables, summary_frame, table_paths

__all__ = [
    "COMPARISON_COLUMNS", "FIGURES", "GRADIENT_FIGURES", "HEATMAP_FIGURE", "PAPER_RESULTS",
    "SWEEP_FIGURE", "TABLES", "aggregate", "comparisons",
    "dataset_name", "figure_paths", "gradient_figure_paths", "heatmap_figure_paths",
    "heatmap_panels", "holm", "latex_escape", "network_name",
    "p_last_figure_paths", "paper_result", "paper_test_error", "plot_epoch_time",
    "plot_error_heatmap", "plot_error_vs_p_last", "plot_figures", "plot_final_error",
    "plot_gradient_figures", "plot_gradient_magnitude", "plot_gradient_profile",
    "plot_heatmap_figure", "plot_p_last_figure", "plot_test_error_curves", "read_comparisons",
    "read_epochs", "read_gradients", "read_runs", "render_tables",
    "summary_frame", "sweep_rows", "table_paths", "variant_order", "welch", "write_comparisons",
]
