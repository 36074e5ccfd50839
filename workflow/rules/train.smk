# Training: one job per run of the grid (sdnet.grid.runs: dataset x network x variant x seed,
# sweeps expanded), one GPU each unless the cascade's `gpus` says more; its flags come from the
# settings cascade (train_flags, common.smk), its folder and log from sdnet.layout (RUN_DIR,
# TRAIN_LOG).
#
# A run on N GPUs (`gpus: N`, `nodes: M`) is ONE job: locally it takes N of `--resources gpu`
# and `sdnet train --nproc N` starts N ranks on N GPUs it locks all-or-none; on Slurm it asks
# for N GPUs and N tasks over M nodes, and `sdnet train --nproc N` (run by the job as is, `mpi`)
# starts the ranks with `srun`: the tasks are the ranks of one run, never N copies of it.
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
    # One local core per rank (1 for a 1-GPU run), so `--cores N --resources gpu=N` runs N
    # 1-GPU jobs on N GPUs; Slurm allocates cpus_per_task per task and each rank uses that many
    # threads.
    threads: train_ranks
    resources:
        gpu=train_ranks,
        nodes=if_several_ranks(train_nodes),
        tasks=if_several_ranks(train_ranks),
        tasks_per_gpu=if_several_ranks(lambda wildcards: 1),
        mpi=if_several_ranks(lambda wildcards: "srun"),
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
