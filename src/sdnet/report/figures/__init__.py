"""runs.csv, epochs.csv, gradients.csv -> the figures, one module per kind (a package).

- errors.py: `test_error_curves`, `final_error`, `epoch_time` (`plot_figures`) and
  `error_vs_p_last` (paper Fig. 8 left, `plot_p_last_figure`, only for a p_L sweep);
- gradients.py: `gradient_magnitude` (paper Fig. 7) and `gradient_profile`
  (`plot_gradient_figures`);
- heatmap.py: `error_heatmap` (paper Fig. 8 right, `plot_heatmap_figure`, only for a grid over
  depth and p_L);
- style.py: what they share (fixed style, panels, colours, range bands over seeds, lr drops,
  byte-reproducible files).
"""

from sdnet.report.figures.errors import (
    FIGURES,
    SWEEP_FIGURE,
    figure_paths,
    p_last_figure_paths,
    plot_epoch_time,
    plot_error_vs_p_last,
    plot_figures,
    plot_final_error,
    plot_p_last_figure,
    plot_test_error_curves,
    sweep_rows,
)
from sdnet.report.figures.gradients import (
    GRADIENT_FIGURES,
    gradient_figure_paths,
    plot_gradient_figures,
    plot_gradient_magnitude,
    plot_gradient_profile,
    profile_epochs,
)
from sdnet.report.figures.heatmap import (
    HEATMAP_FIGURE,
    heatmap_figure_paths,
    heatmap_panels,
    plot_error_heatmap,
    plot_heatmap_figure,
)
from sdnet.report.figures.style import BAND_LEGEND, FIGURE_FORMATS, lr_drops

__all__ = [
    "BAND_LEGEND", "FIGURES", "FIGURE_FORMATS", "GRADIENT_FIGURES", "HEATMAP_FIGURE",
    "SWEEP_FIGURE", "figure_paths", "gradient_figure_paths", "heatmap_figure_paths",
    "heatmap_panels", "lr_drops", "p_last_figure_paths", "plot_epoch_time",
    "plot_error_heatmap", "plot_error_vs_p_last", "plot_figures", "plot_final_error",
    "plot_gradient_figures", "plot_gradient_magnitude", "plot_gradient_profile",
    "plot_heatmap_figure", "plot_p_last_figure", "plot_test_error_curves", "profile_epochs",
    "sweep_rows",
]
