"""One table from flag names to TrainConfig fields.

train.py defines a flag for each entry, with the field's `Attributes:` documentation as
its help; sweep.py's `preset:flag=value` and bench.py apply the same entries. To make a
new config field settable from the command line, add its entry here: a flag name, the
field's dotted path, its Python type and, for a name out of a registry, the choices.
"""

import dataclasses
import inspect
import re
from typing import Callable

from dcgan import models
from dcgan.core.config import (
    AUGMENTATIONS,
    CONDITIONINGS,
    DTYPE_POLICIES,
    LR_SCALINGS,
    LR_SCHEDULES,
    SCALING_KEEPS,
    UPDATES,
    TrainConfig,
)
from dcgan.core.errors import ConfigError
from dcgan.gan import losses
from dcgan.recipes.validation import validate

__all__ = ["OVERRIDES", "Override", "apply", "help_text", "parse"]


@dataclasses.dataclass(frozen=True)
class Override:
    """How one flag sets one config field.

    Attributes:
      field: dotted path from TrainConfig, at most two deep (e.g. "data.global_batch_size").
      type: int, float, str or bool: the flag's type and the field's; or tuple, for a
        field of names given as a comma-separated list (`--augment=translation,cutout`).
      choices: for a str field, the names allowed (a registry's keys), for a tuple field
        the names its elements may be, or None.
      lower_bound: for a number, the least value the flag accepts, or None.
    """

    field: str
    type: type
    choices: Callable[[], tuple] | tuple | None = None
    lower_bound: int | None = None

    def allowed(self) -> tuple | None:
        """The choices, read when asked: a registry may gain names after import."""
        return tuple(self.choices()) if callable(self.choices) else self.choices


OVERRIDES = {
    "architecture": Override("model.architecture", str, lambda: sorted(models.ARCHITECTURES)),
    "sync_batch_norm": Override("model.synchronized_batch_norm", bool),
    "fused_batch_norm": Override("model.fused_batch_norm", bool),
    "conditioning": Override("model.conditioning", str, CONDITIONINGS),
    "data_dir": Override("data.data_dir", str),
    "batch_size": Override("data.global_batch_size", int, lower_bound=1),
    "g_learning_rate": Override("generator_optimizer.learning_rate", float),
    "d_learning_rate": Override("discriminator_optimizer.learning_rate", float),
    "g_beta1": Override("generator_optimizer.beta_1", float),
    "d_beta1": Override("discriminator_optimizer.beta_1", float),
    "g_beta2": Override("generator_optimizer.beta_2", float),
    "d_beta2": Override("discriminator_optimizer.beta_2", float),
    "loss": Override("loss", str, lambda: sorted(losses.LOSSES)),
    "update": Override("update", str, UPDATES),
    "n_critic": Override("n_critic", int),
    "gp_weight": Override("penalties.gp_weight", float),
    "r1_weight": Override("penalties.r1_weight", float),
    "r2_weight": Override("penalties.r2_weight", float),
    "penalty_every": Override("penalties.every", int, lower_bound=1),
    "ema_decay": Override("ema_decay", float),
    "augment": Override("augment", tuple, AUGMENTATIONS),
    "lr_schedule": Override("schedule.kind", str, LR_SCHEDULES),
    "lr_warmup_steps": Override("schedule.warmup_steps", int, lower_bound=0),
    "lr_floor": Override("schedule.floor", float),
    "lr_decay_fraction": Override("schedule.decay_fraction", float),
    "per_replica_batch_size": Override("scaling.per_replica_batch_size", int, lower_bound=1),
    "lr_scaling": Override("scaling.lr_scaling", str, LR_SCALINGS),
    "scaling_warmup_images": Override("scaling.warmup_images", int, lower_bound=0),
    "sync_batch_norm_below": Override("scaling.sync_batch_norm_below", int, lower_bound=0),
    "scaling_keeps": Override("scaling.keeps", str, SCALING_KEEPS),
    "epochs": Override("epochs", int, lower_bound=1),
    "max_steps": Override("max_steps", int, lower_bound=1),
    "max_train_minutes": Override("max_train_minutes", float),
    "steps_per_call": Override("steps_per_call", int, lower_bound=1),
    "dtype_policy": Override("dtype_policy", str, DTYPE_POLICIES),
    "jit_compile": Override("jit_compile", bool),
    "fused_adam": Override("fused_adam", bool),
    "deterministic": Override("deterministic", bool),
    "checkpoint_every_steps": Override("checkpoint_every_steps", int, lower_bound=1),
    "max_checkpoints": Override("max_checkpoints", int, lower_bound=1),
}


def _owner(path: str):
    """(the config class holding the field at dotted `path`, the field's name)."""
    owner, *parents, name = [TrainConfig, *path.split(".")]
    for parent in parents:
        owner = type(getattr(owner(), parent))
    return owner, name


def help_text(name: str) -> str:
    """The `Attributes:` entry of flag `name`'s field, on one line, after its path.

    Raises:
      KeyError: the field has no entry in its class's docstring.
    """
    owner, field = _owner(OVERRIDES[name].field)
    # inspect.getdoc dedents: entries at two spaces, their continuation lines deeper.
    entries = re.findall(r"^  (\w+): (.*(?:\n {4,}.*)*)", inspect.getdoc(owner), re.MULTILINE)
    text = dict(entries)[field]
    return f"{OVERRIDES[name].field}: {' '.join(text.split())} (default: the preset's)"


def parse(name: str, text: str):
    """The value of `--name=text` (bool: true/false/1/0; tuple: names joined by commas,
    or by "+" where commas separate something else, as in sweep.py's --configs).

    Raises:
      ConfigError: `name` is not in OVERRIDES, or `text` is not a value of its type,
        one of its choices or at least its lower bound.
    """
    if name not in OVERRIDES:
        raise ConfigError(f"Unknown override {name!r}; overridable: {sorted(OVERRIDES)}.")
    override = OVERRIDES[name]
    try:
        if override.type is bool:
            value = {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        elif override.type is tuple:
            value = tuple(part for part in re.split("[,+]", text) if part)
        else:
            value = override.type(text)
    except (KeyError, ValueError):
        kind = override.type.__name__
        raise ConfigError(f"{name} must be of type {kind}, got {text!r}") from None
    names = value if override.type is tuple else (value,)
    if override.allowed() is not None and not set(names) <= set(override.allowed()):
        raise ConfigError(f"Unknown {name} {value!r}; known: {list(override.allowed())}.")
    if override.lower_bound is not None and value < override.lower_bound:
        raise ConfigError(f"{name} must be at least {override.lower_bound}, got {value}")
    return value


def apply(config: TrainConfig, values: dict) -> TrainConfig:
    """`config` with the field of each flag in `values` ({flag name: value}; None leaves
    the field as it is) set, all at once, so that cross-field checks see the result.

    Raises:
      KeyError: a name of `values` is not in OVERRIDES.
      ConfigError: the resulting config is invalid.
    """
    changes = {}
    for name, value in values.items():
        if value is None:
            continue
        if OVERRIDES[name].type is tuple:
            value = tuple(value)  # absl's list flags give lists.
        head, _, rest = OVERRIDES[name].field.partition(".")
        if rest:
            changes.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    config = dataclasses.replace(config, **{
        head: dataclasses.replace(getattr(config, head), **value)
        if isinstance(value, dict) else value for head, value in changes.items()})
    # Here, not only in `training.train`, so that sweep.py refuses a bad grid before its
    # first run; the replica-dependent checks wait for the strategy.
    validate(config)
    return config
