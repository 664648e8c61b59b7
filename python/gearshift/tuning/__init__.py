"""Job-level tuning and online adaptation (the Zeus and GPOEO capabilities): what a user runs.

- ``power_limit``: one GPU power limit for the job, chosen online under the Zeus cost.
- ``batch_size``: a Thompson-sampling bandit over batch sizes across recurring runs (SQLite state).
- ``boundaries``: iteration boundaries from kernel-name repeats or from a power trace's period.
- ``online``: just-in-time profiling, exploitation, exploration and re-planning on drift.
- ``distributed``: per-rank tracing/profiling with planning on rank 0 (torch.distributed).

``replay`` holds the experiments that replay published traces (Zeus) or a scripted drift; they
reproduce results and are not needed to tune a job.

Nothing heavy is imported here; each module imports numpy/pandas/torch where it needs them.
"""
