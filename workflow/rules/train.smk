# Training: one job per run of the grid (sdnet.grid.runs: dataset x network x variant x seed,
# sweeps expanded), one GPU each; its flags come from the settings cascade (train_flags,
# common.smk), its folder and log from sdnet.layout (RUN_DIR, TRAIN_LOG).
#
# checkpoint.pt (in the run folder) is deliberately not an output: Snakemake never deletes it, so
# a job killed by the walltime, a node failure or Ctrl-C resumes on its retry or on the next call.
# --on-mismatch restart: a rerun caused by changed settings starts over instead of resuming.


rule train_run:
    """Train one network; summary.json (written last by the trainer) marks a complete run."""
    input:
        train=f"{DATA_DIR}/train.npz",
        test=f"{DATA_DIR}/test.npz",
        meta=f"{DATA_DIR}/meta.json",
    output:
        metrics=f"{RUN_DIR}/metrics.csv",
        summary=f"{RUN_DIR}/summary.json",
        model=f"{RUN_DIR}/model.pt",
    params:
        flags=train_flags,
    # One local core per job, so `--cores N --resources gpu=N` runs N jobs on N GPUs; Slurm
    # allocates cpus_per_task and the trainer uses that many threads.
    threads: 1
    resources:
        gpu=1,
        gpu_model=config["train_resources"]["gpu_model"],  # None: any GPU
        runtime=train_runtime,
        mem_mb=config["train_resources"]["mem_mb"],
        cpus_per_task=config["train_resources"]["cpus"],
    retries: train_retries()
    log:
        TRAIN_LOG,
    conda:
        "../envs/sdnet.yaml"
    shell:
        "OMP_NUM_THREADS={resources.cpus_per_task} sdnet train"
        ' --data "$(dirname {input.meta:q})" --out "$(dirname {output.summary:q})"'
        " {params.flags} --on-mismatch restart > {log:q} 2>&1"
