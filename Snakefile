# sdnet: Deep Networks with Stochastic Depth (Huang et al. 2016), reproduced.
#
#   snakemake --cores 1 --resources gpu=1       everything, locally, one GPU job at a time
#   snakemake --profile slurm                   training jobs on Slurm GPUs, the rest locally
#   snakemake results/tables/summary.tex        just that table and what it needs
#   snakemake --cores 2 --configfile config/demo.yaml   the CPU demo (fake data, ~3 minutes)
#
# Only missing or stale results are recomputed: a run reruns when its `sdnet train` flags change.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
# The Slurm profile's workaround for a plugin bug (a scancelled job must be retried); a no-op
# when the Slurm executor plugin is not installed.
include: "slurm/cancelled_jobs.smk"


localrules:
    all,
    make_fake_archive,  # and make_fake_<folder data set> (workflow/rules/data.smk)
    download_dataset,
    prepare_dataset,
    aggregate_metrics,
    plot_figures,
    render_tables,


wildcard_constraints:
    dataset="|".join(spec.DATASETS),
    archive=r"[^/]+",
    network=layout.NETWORK_PATTERN,  # resnet110, preact-resnet110 (sdnet.networks' names)
    seed=layout.SEED_PATTERN,
    variant=layout.VARIANT_PATTERN,  # sweep names carry values: linear-p_last0.1


rule all:
    """The figures and tables of the whole experiment in config.yaml. Every run's summary.json
    is listed too: Snakemake (9) does not remake a deleted intermediate file while the files
    made from it are up to date, so this is what makes a deleted summary.json retrain that run."""
    input:
        all_summaries(),
        metrics_files(),
        figure_files(),
        table_files(),
    default_target: True
