"""Experiments that replay published traces or scripted conditions; nothing here tunes a user's job.

- ``zeus_trace``: readers for the Zeus NSDI '23 traces and the recurring jobs defined on them.
- ``validation``: the Zeus traces replayed through the power-limit tuner, against their optima.
- ``recurrence``: the batch-size bandit replayed over recurring jobs from those traces.
- ``drift``: online tuning vs a stale schedule when a co-located job arrives (simulated GPU).

What a user runs on a training job lives one level up, in ``gearshift.tuning``.
"""
