"""Jobs: how trainers become processes on machines (torch-free).

- `supervisor`: start child processes, forward TERM/INT/HUP, stop the rest when one fails, one
  exit-code policy: used by both of the following;
- `packs`: several trainers side by side in one job (`sdnet launch`), with attempt logs;
- `ranks`: one trainer on N ranks (`sdnet train --nproc/--nodes`), locally or through srun;
  `worker` is a rank's entry point;
- `gpus`: GPU slots (file locks), `sharing`: packs of runs per GPU and Slurm shards.
"""
