# Training: one job per run of the grid (sdnet.grid.runs: dataset x network x variant x seed,
# sweeps expanded), one GPU each unless the cascade's `gpus` says more; its flags come from the
# settings cascade (train_flags, common.smk), its folder and log from sdnet.layout (RUN_DIR,
# TRAIN_LOG). With train_resources.runs_per_gpu k > 1 several runs share a GPU (sdnet.jobs.sharing):
# one job per run with k per GPU (gpu_sharing: shard), or one job per k runs (gpu_sharing: pack).
#
# A run on N GPUs (`gpus: N`, `nodes: M`) is ONE job: locally it takes N of `--resources gpu`
# and `sdnet train --nproc N` starts N ranks on N GPUs it locks all-or-none; on Slurm it asks
# for N GPUs and N tasks over M nodes, and `sdnet train --nproc N` (run by the job as is, `mpi`)
# starts the ranks with `srun`: the tasks are the ranks of one run, never N copies of it.
#
# checkpoint.pt (in the run folder) is deliberately not an output: Snakemake never deletes it, so
# a job killed by the walltime, a node failure or Ctrl-C resumes on its retry or on the next call.
# --on-mismatch restart: a rerun caused by changed settings starts over instead of resuming.


if not PACKED:

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
            threads=trainer_threads(train_ranks),
        # train_resources.cpus per rank, and the trainer uses exactly the job's threads (what
        # Snakemake gave it, capped by --cores; split over its ranks): local jobs never add up
        # to more threads than --cores (common.smk: trainer_threads). Slurm allocates
        # cpus_per_task per task. With runs_per_gpu k and gpu_sharing shard: k jobs per GPU
        # (common.smk: train_gpu, train_gres).
        threads: job_threads(train_ranks)
        resources:
            gpu=train_gpu,
            nodes=if_several_ranks(train_nodes),
            tasks=if_several_ranks(train_ranks),
            tasks_per_gpu=if_several_ranks(lambda wildcards: 1),
            mpi=if_several_ranks(lambda wildcards: "srun"),
            gpu_model=train_gpu_model,  # None: any GPU
            runtime=train_runtime,
            mem_mb=TRAIN_RESOURCES["mem_mb"],
            cpus_per_task=TRAIN_RESOURCES["cpus"],
            runs_per_gpu=RUNS_PER_GPU,  # the trainer's GPU slots and share (sdnet.train.accounting)
            **({"gres": train_gres} if SHARDED else {}),
        retries: train_retries()
        log:
            TRAIN_LOG,
        conda:
            "../envs/sdnet.yaml"
        # sdnet launch keeps every attempt's log: Snakemake deletes {log} before each attempt,
        # the run folder's train.log holds them all and is copied back into {log} first.
        shell:
            "sdnet launch --threads {params.threads}"
            " --runs-per-gpu {resources.runs_per_gpu} {log:q} --"
            ' --data "$(dirname {input.meta:q})" --out "$(dirname {output.summary:q})"'
            " {params.flags} --on-mismatch restart"


# gpu_sharing pack: one job per pack of k runs (sdnet.jobs.sharing.packs), holding one GPU with k
# times one run's CPUs and memory; `sdnet launch` trains its runs side by side and each resumes
# on its own when the job is retried. A rule per pack: its outputs are the k runs' files.
for _pack in PACKS:

    rule:
        name:
            _pack.name
        input:
            commands.pack_inputs(_pack.runs, DATA_DIR),
        output:
            commands.pack_outputs(_pack.runs, RUN_DIR),
        params:
            members=commands.pack_members(_pack.runs, DATA_DIR, RUN_DIR, TRAIN_LOG),
            threads=trainer_threads(_pack.size),  # per run: the pack's threads over its runs
        threads: job_threads(_pack.size)
        resources:
            gpu=1,
            gpu_model=TRAIN_RESOURCES["gpu_model"],
            runtime=train_runtime,
            mem_mb=_pack.size * TRAIN_RESOURCES["mem_mb"],
            cpus_per_task=_pack.size * TRAIN_RESOURCES["cpus"],
            runs_in_pack=_pack.size,
        retries: train_retries()
        log:
            [TRAIN_LOG.format(**run.wildcards) for run in _pack.runs],
        conda:
            "../envs/sdnet.yaml"
        shell:
            "sdnet launch --threads {params.threads}"
            " --runs-per-gpu {resources.runs_in_pack} {params.members}"
