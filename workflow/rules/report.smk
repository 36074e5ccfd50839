# Report: every run's summary.json -> runs.csv/epochs.csv/gradients.csv -> comparisons, figures
# and tables.
# The PNG figures, comparisons.csv and the summary tables also go into
# `snakemake --report results/report.html`. Every rule here is light: it runs where Snakemake runs.


localrules:
    compare_variants,
    plot_p_last_sweep,
    plot_gradients,
    plot_heatmap,


rule aggregate_metrics:
    """One row per run, one per run-epoch and one per run-epoch-block (gradient strength); an
    incomplete run folder is an error."""
    input:
        summaries=all_summaries(),
    output:
        runs=RUNS_CSV,
        epochs=EPOCHS_CSV,
        gradients=GRADIENTS_CSV,
    log:
        f"{LOGS}/aggregate_metrics.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/aggregate.py"


rule plot_figures:
    """Test-error curves, final error per depth and variant, seconds per epoch (PDF + PNG)."""
    input:
        runs=RUNS_CSV,
        epochs=EPOCHS_CSV,
    output:
        test_error_curves_pdf=f"{RESULTS}/figures/test_error_curves.pdf",
        test_error_curves_png=report(
            f"{RESULTS}/figures/test_error_curves.png",
            caption="../report/test_error_curves.rst",
            category="Figures",
        ),
        final_error_pdf=f"{RESULTS}/figures/final_error.pdf",
        final_error_png=report(
            f"{RESULTS}/figures/final_error.png",
            caption="../report/final_error.rst",
            category="Figures",
        ),
        epoch_time_pdf=f"{RESULTS}/figures/epoch_time.pdf",
        epoch_time_png=report(
            f"{RESULTS}/figures/epoch_time.png",
            caption="../report/epoch_time.rst",
            category="Figures",
        ),
    params:
        log_scale=config["figures"]["log_scale"],
    log:
        f"{LOGS}/plot_figures.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/figures.py"


rule compare_variants:
    """Each variant against its row's constant depth: Welch's t-test, 95 % interval, Holm."""
    input:
        runs=RUNS_CSV,
    output:
        comparisons=report(
            COMPARISONS_CSV, caption="../report/comparisons.rst", category="Tables"
        ),
    log:
        f"{LOGS}/compare_variants.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/comparisons.py"


rule plot_p_last_sweep:
    """Test error against p_L, a line per survival rule (the grid sweeps p_L; paper Fig. 8)."""
    input:
        runs=RUNS_CSV,
    output:
        pdf=f"{RESULTS}/figures/{SWEEP_FIGURE}.pdf",
        png=report(
            f"{RESULTS}/figures/{SWEEP_FIGURE}.png",
            caption="../report/error_vs_p_last.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/plot_p_last_sweep.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/p_last_figure.py"


rule plot_gradients:
    """Gradient strength: the first residual block's first convolution per epoch (paper Fig. 7)
    and every block's at a few epochs."""
    input:
        runs=RUNS_CSV,
        epochs=EPOCHS_CSV,
        gradients=GRADIENTS_CSV,
    output:
        gradient_magnitude_pdf=f"{RESULTS}/figures/gradient_magnitude.pdf",
        gradient_magnitude_png=report(
            f"{RESULTS}/figures/gradient_magnitude.png",
            caption="../report/gradient_magnitude.rst",
            category="Figures",
        ),
        gradient_profile_pdf=f"{RESULTS}/figures/gradient_profile.pdf",
        gradient_profile_png=report(
            f"{RESULTS}/figures/gradient_profile.png",
            caption="../report/gradient_profile.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/plot_gradients.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/gradient_figures.py"


rule plot_heatmap:
    """Test error over depth and p_L (the grid varies both; paper Fig. 8 right)."""
    input:
        runs=RUNS_CSV,
    output:
        pdf=f"{RESULTS}/figures/{HEATMAP_FIGURE}.pdf",
        png=report(
            f"{RESULTS}/figures/{HEATMAP_FIGURE}.png",
            caption="../report/error_heatmap.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/plot_heatmap.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/heatmap_figure.py"


rule render_tables:
    """Mean +- std over seeds with the differences to constant depth (summary), every run
    (per_seed) and the device-hours per variant (cost), in LaTeX and Markdown."""
    input:
        runs=RUNS_CSV,
        comparisons=COMPARISONS_CSV,
    output:
        summary_tex=report(
            f"{RESULTS}/tables/summary.tex", caption="../report/summary.rst", category="Tables"
        ),
        summary_md=report(
            f"{RESULTS}/tables/summary.md", caption="../report/summary.rst", category="Tables"
        ),
        per_seed_tex=f"{RESULTS}/tables/per_seed.tex",
        per_seed_md=f"{RESULTS}/tables/per_seed.md",
        cost_tex=f"{RESULTS}/tables/cost.tex",
        cost_md=report(
            f"{RESULTS}/tables/cost.md", caption="../report/cost.rst", category="Tables"
        ),
    log:
        f"{LOGS}/render_tables.log",
    conda:
        "../envs/sdnet.yaml"
    script:
        "../scripts/tables.py"
