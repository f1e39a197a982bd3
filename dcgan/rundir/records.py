"""config.json: what a run records of itself, which of it a resume must share, and how
records written by older versions read today.

`dcgan.rundir.layout.RunDirectory` reads and writes the file; this module knows its
contents.
"""

import dataclasses
import json
import pathlib
import subprocess

import keras
import tensorflow as tf

from dcgan import models
from dcgan.core.config import ModelConfig, TrainConfig
from dcgan.recipes.plan import RunPlan

__all__ = ["RESUME_FIELDS", "config_record", "model_config", "resume_mismatches",
           "run_record", "upgrade"]

# Entries of config.json (dotted paths) that a resumed run must share with the run in the
# directory. They decide what the checkpoint holds (architecture, noise_dim, the classes
# and how D sees them, the fixed noise's shape, the dtype policy: mixed_float16 adds
# loss-scale variables) or what a step means (loss, update, batch size, split, seeds and
# shuffle buffer: the data order; penalties, Adam's betas and augmentation: the losses and
# updates). A constant learning rate is a variable of the optimizer's checkpoint and a
# schedule is not, so the schedule, its warm-up, decay share and floor stay too. Without
# them a preset changed between two sessions would resume an old run under the new
# settings, and its config.json would claim settings that trained none of its steps.
# Everything else may change on resume: epochs and max_steps (that is how a run is
# extended), learning rates (how it is rescued after a non-finite loss), steps_per_call,
# checkpointing, jit_compile, sync and fused batch norm, fused Adam and the number of
# replicas. A per-replica batch (`recipes.scaling`) makes the global batch, the EMA decay
# and the warm-up follow the replicas, so with one a run resumes on its own number only.
RESUME_FIELDS = (
    "config.model.architecture",
    "config.model.noise_dim",
    "config.model.num_classes",
    "config.model.conditioning",
    "config.num_fixed_samples",
    "dtype_policy",
    "config.loss",
    "config.update",
    "config.n_critic",
    "config.penalties.gp_weight",
    "config.penalties.r1_weight",
    "config.penalties.r2_weight",
    "config.penalties.every",
    "config.generator_optimizer.beta_1",
    "config.generator_optimizer.beta_2",
    "config.discriminator_optimizer.beta_1",
    "config.discriminator_optimizer.beta_2",
    "config.augment",
    "config.ema_decay",
    "config.schedule.kind",
    "config.schedule.warmup_steps",
    "config.schedule.decay_fraction",
    "config.schedule.floor",
    "config.data.global_batch_size",
    "config.data.split",
    "config.data.pixel_range",
    "config.data.shuffle_seed",
    "config.data.shuffle_buffer",
    "config.seed",
)


# Fields that TrainConfig held flat until they became its `schedule` and `penalties`
# sub-configs: {old name: (sub-config, new name)}.
_MOVED_FIELDS = {
    "lr_schedule": ("schedule", "kind"),
    "lr_warmup_steps": ("schedule", "warmup_steps"),
    "lr_floor": ("schedule", "floor"),
    "lr_decay_fraction": ("schedule", "decay_fraction"),
    "gp_weight": ("penalties", "gp_weight"),
    "r1_weight": ("penalties", "r1_weight"),
    "r2_weight": ("penalties", "r2_weight"),
    "penalty_every": ("penalties", "every"),
}


# What a mismatch message calls a moved field: the flag that sets it (train.py --lr_floor).
_FLAG_NAMES = {f"config.{group}.{new}": old for old, (group, new) in _MOVED_FIELDS.items()}


def upgrade(record: dict) -> dict:
    """A config.json record as today's version writes it: the flat learning-rate and
    penalty fields of records written before the sub-configs existed moved into
    "schedule" and "penalties". A record of today comes back unchanged (a copy)."""
    record = json.loads(json.dumps(record))
    config = record.get("config", {})
    for old, (group, new) in _MOVED_FIELDS.items():
        if old in config:
            config.setdefault(group, {})[new] = config.pop(old)
    return record


def config_record(config: TrainConfig) -> dict:
    """The "config" entry of config.json: the TrainConfig's fields, with the facts derived
    from them (`pixel_range`, `with_labels`, `shuffle_seed`) under "data", where
    config.json held them while they were DataConfig fields. So a run directory written
    before they became derived resumes as before, and one whose data order had a seed
    other than `seed` is refused (data.shuffle_seed differs) instead of silently changing
    its data order."""
    record = dataclasses.asdict(config)
    record["data"].update(pixel_range=models.output_range(config.model.architecture),
                          with_labels=config.with_labels,
                          shuffle_seed=config.shuffle_seed)
    return record


def _git_commit() -> str | None:
    """The commit of the dcgan source, "-dirty" when tracked files differ from it; None
    outside a git checkout."""
    source = pathlib.Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=source, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")


def run_record(plan: RunPlan, run_info: dict | None = None) -> dict:
    """The contents of config.json: the config (scaled to the replicas), where it runs,
    what the scaling made of the recipe (`RunPlan.scaling`), the versions that ran it, and
    `run_info` (extra JSON-serialisable facts, e.g. the binary's flags)."""
    return {
        "config": config_record(plan.config),
        "dtype_policy": plan.dtype_policy,
        "replicas": plan.replicas,
        "scaling": plan.scaling,
        "workers": plan.workers,
        "steps_per_epoch": plan.steps_per_epoch,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": _git_commit(),
        **(run_info or {}),
    }


def model_config(record: dict) -> ModelConfig:
    """The ModelConfig a config.json record holds."""
    return ModelConfig(**record["config"]["model"])


_MISSING = object()


def _lookup(record: dict, dotted: str):
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _replicas_mismatch(recorded: dict, current: dict) -> str | None:
    """When `current` has a per-replica batch and another number of replicas than the run
    in `recorded`, a mismatch entry that says so and what per-replica batch resumes the
    run's global batch here; else None."""
    per_replica = _lookup(current, "config.scaling.per_replica_batch_size")
    then, now = recorded.get("replicas"), current.get("replicas")
    batch = _lookup(recorded, "config.data.global_batch_size")
    if per_replica in (None, _MISSING) or None in (then, now) or then == now or batch is _MISSING:
        return None
    resume = (f"--per_replica_batch_size={batch // now} resumes it here" if batch % now == 0
              else f"its global batch {batch} does not split over {now}")
    return (f"replicas: {then} in the run, {now} now, at --per_replica_batch_size="
            f"{per_replica} ({resume})")


def resume_mismatches(recorded: dict, current: dict) -> list[str]:
    """The RESUME_FIELDS in which two config.json records disagree.

    A pure function of the two records: `recorded` is the config.json already in the run
    directory, `current` the one the new command would write (tuples and lists compare
    equal, as JSON has only lists). A field missing from either record (a config.json
    written before the field existed) is not compared.

    Returns:
      One "field: 'recorded' in the run, 'current' now" string per disagreement, in
      RESUME_FIELDS order (a field of a sub-config by its flag's name, e.g. lr_floor),
      the global batch's followed by the replicas' when a per-replica batch made it
      differ (`_replicas_mismatch`); [] when the run can be resumed with `current`.
    """
    recorded, current = upgrade(recorded), upgrade(current)
    mismatches = []
    for field in RESUME_FIELDS:
        then, now = _lookup(recorded, field), _lookup(current, field)
        if _MISSING not in (then, now) and then != now:
            mismatches.append(f"{_FLAG_NAMES.get(field, field.removeprefix('config.'))}: "
                              f"{then!r} in the run, {now!r} now")
            replicas = _replicas_mismatch(recorded, current)
            if field == "config.data.global_batch_size" and replicas:
                mismatches.append(replicas)
    return mismatches
