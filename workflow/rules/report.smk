# Report: every run's summary.json -> runs.csv/epochs.csv/gradients.csv -> comparisons, figures
# and tables, each step an `sdnet report ...` command (like the data and training rules), its
# progress and errors in the rule's log. The PNG figures, comparisons.csv and the summary tables
# also go into `snakemake --report results/report.html`. Every rule here is light: it runs where
# Snakemake runs.


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
        runs=f"{METRICS}/runs.csv",
        epochs=f"{METRICS}/epochs.csv",
        gradients=f"{METRICS}/gradients.csv",
    log:
        f"{LOGS}/aggregate_metrics.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet report aggregate {input.summaries:q} --out-runs {output.runs:q}"
        " --out-epochs {output.epochs:q} --out-gradients {output.gradients:q} > {log:q} 2>&1"


rule plot_figures:
    """Test-error curves, final error per depth and variant, seconds per epoch (PDF + PNG)."""
    input:
        runs=rules.aggregate_metrics.output.runs,
        epochs=rules.aggregate_metrics.output.epochs,
    output:
        **figures(*targets.FIGURES),
    params:
        out_dir=output_folder,
        log_scale="--log-scale" if config["figures"]["log_scale"] else "--no-log-scale",
    log:
        f"{LOGS}/plot_figures.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet report figures --runs {input.runs:q} --epochs {input.epochs:q}"
        ' {params.log_scale} --out-dir {params.out_dir:q} > {log:q} 2>&1'


rule compare_variants:
    """Each variant against its row's constant depth: Welch's t-test, 95 % interval, Holm."""
    input:
        runs=rules.aggregate_metrics.output.runs,
    output:
        comparisons=report(
            f"{METRICS}/comparisons.csv", caption="../report/comparisons.rst", category="Tables"
        ),
    log:
        f"{LOGS}/compare_variants.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet report compare --runs {input.runs:q} --out {output.comparisons:q} > {log:q} 2>&1"


rule plot_p_last_sweep:
    """Test error against p_L, a line per survival rule (the grid sweeps p_L; paper Fig. 8)."""
    input:
        runs=rules.aggregate_metrics.output.runs,
    output:
        **figures(targets.SWEEP_FIGURE),
    params:
        out_dir=output_folder,
    log:
        f"{LOGS}/plot_p_last_sweep.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        'sdnet report p-last-figure --runs {input.runs:q} --out-dir {params.out_dir:q}'
        " > {log:q} 2>&1"


rule plot_gradients:
    """Gradient strength: the first residual block's first convolution per epoch (paper Fig. 7)
    and every block's at a few epochs."""
    input:
        runs=rules.aggregate_metrics.output.runs,
        epochs=rules.aggregate_metrics.output.epochs,
        gradients=rules.aggregate_metrics.output.gradients,
    output:
        **figures(*targets.GRADIENT_FIGURES),
    params:
        out_dir=output_folder,
    log:
        f"{LOGS}/plot_gradients.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet report gradient-figures --runs {input.runs:q} --epochs {input.epochs:q}"
        ' --gradients {input.gradients:q} --out-dir {params.out_dir:q} > {log:q} 2>&1'


rule plot_heatmap:
    """Test error over depth and p_L (the grid varies both; paper Fig. 8 right)."""
    input:
        runs=rules.aggregate_metrics.output.runs,
    output:
        **figures(targets.HEATMAP_FIGURE),
    params:
        out_dir=output_folder,
    log:
        f"{LOGS}/plot_heatmap.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        'sdnet report heatmap --runs {input.runs:q} --out-dir {params.out_dir:q}'
        " > {log:q} 2>&1"


rule render_tables:
    """Mean +- std over seeds with the differences to constant depth (summary), every run
    (per_seed) and the device-hours per variant (cost), in LaTeX and Markdown."""
    input:
        runs=rules.aggregate_metrics.output.runs,
        comparisons=rules.compare_variants.output.comparisons,
    output:
        summary_tex=report(
            f"{TABLES}/summary.tex", caption="../report/summary.rst", category="Tables"
        ),
        summary_md=report(
            f"{TABLES}/summary.md", caption="../report/summary.rst", category="Tables"
        ),
        per_seed_tex=f"{TABLES}/per_seed.tex",
        per_seed_md=f"{TABLES}/per_seed.md",
        cost_tex=f"{TABLES}/cost.tex",
        cost_md=report(f"{TABLES}/cost.md", caption="../report/cost.rst", category="Tables"),
    params:
        out_dir=output_folder,
    log:
        f"{LOGS}/render_tables.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet report tables --runs {input.runs:q} --comparisons {input.comparisons:q}"
        ' --out-dir {params.out_dir:q} > {log:q} 2>&1'
