import dataclasses

import pytest

from dcgan import models
from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE
from dcgan.core.errors import ConfigError
from dcgan.recipes.plan import make_plan, planned_steps
from dcgan.recipes.presets import PRESETS
from dcgan.recipes.validation import validate


def _changed(preset, **fields):
    """PRESETS[preset] with the fields given as "field" or "part.field" replaced."""
    config = PRESETS[preset]
    for dotted, value in fields.items():
        head, _, rest = dotted.partition("__")
        value = dataclasses.replace(getattr(config, head), **{rest: value}) if rest else value
        config = dataclasses.replace(config, **{head: value})
    return config


@pytest.mark.parametrize("config, context, message", [
    (_changed("wgan_gp_paper", update="simultaneous"), {},
     "n_critic=5 needs the alternating update"),
    (_changed("wgan_gp", penalties__gp_weight=0.0), {}, "loss 'wasserstein' needs a penalty"),
    (_changed("tutorial", model__num_classes=5), {}, "has 10 classes, got num_classes=5"),
    (_changed("tutorial", model__architecture="nope"), {}, "Unknown architecture 'nope'"),
    (_changed("tutorial", loss="nope"), {}, "Unknown loss 'nope'"),
    (_changed("fast", penalties__r1_weight=1.0), {}, "The fast discriminator has batch norm"),
    (_changed("fast_deep_gd", penalties__gp_weight=1.0), {},
     "use --architecture=fast_deep_gd_nf, the default's networks with a norm-free D"),
    (_changed("tutorial", data__global_batch_size=33), {"num_replicas": 2},
     "global batch size 33 is not divisible by the 2 replicas"),
    (_changed("wgan_gp_paper", data__split="test[:300]"), {"steps_per_epoch": 0},
     r"split 'test\[:300\]' holds fewer images than one step's 5 batch\(es\) of 64"),
    (_changed("fast", max_train_minutes=1.0), {"num_workers": 2},
     "max_train_minutes needs a single worker"),
    (_changed("fast", epochs=None), {}, "epochs=None trains until max_train_minutes"),
    (_changed("fast", epochs=None, max_train_minutes=1.0, schedule__kind="cosine"), {},
     "lr_schedule='cosine' with lr_warmup_steps=0 needs the run's length in steps"),
    (_changed("fast", epochs=None, max_train_minutes=1.0, schedule__warmup_steps=10), {},
     "lr_schedule='constant' with lr_warmup_steps=10 needs the run's length"),
])
def test_each_cross_field_disagreement_is_refused(config, context, message):
    with pytest.raises(ConfigError, match=message):
        validate(config, **context)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_presets_pass_on_two_replicas_and_workers(preset):
    validate(PRESETS[preset], num_replicas=2, num_workers=2, steps_per_epoch=1)


def test_the_context_checks_pass_where_the_context_allows():
    validate(_changed("tutorial", data__global_batch_size=33), num_replicas=1)
    validate(_changed("fast", max_train_minutes=1.0), num_workers=1)


@pytest.mark.parametrize("architecture, pixel_range", [
    ("tutorial", TANH_RANGE), ("fashion128", SIGMOID_RANGE), ("fast", TANH_RANGE)])
def test_the_pixel_range_follows_the_architecture(architecture, pixel_range):
    config = _changed("tutorial", model__architecture=architecture)
    assert (make_plan(config, dtype_policy="float32").pixel_range == pixel_range
            == models.output_range(architecture))
    # The pipeline scales the real images to it (`loop._step_batch_iterator`), and the
    # config no longer holds a value of its own that could disagree.
    assert "pixel_range" not in {field.name for field in dataclasses.fields(config.data)}


def test_labels_follow_the_class_count_and_the_shuffle_seed_follows_the_seed():
    unconditional = PRESETS["tutorial"]
    assert not unconditional.with_labels
    assert _changed("tutorial", model__num_classes=10).with_labels
    assert unconditional.shuffle_seed == unconditional.seed == 0
    assert _changed("tutorial", seed=5).shuffle_seed == 5


@pytest.mark.parametrize("fields, total_steps", [
    ({"epochs": None, "max_train_minutes": 1.0}, None),
    ({"epochs": None, "max_steps": 7, "schedule__kind": "cosine"}, 7),
    ({"epochs": 2, "max_steps": 7}, 7),
    ({"epochs": 2, "max_steps": 700}, 2 * 9),
])
def test_only_the_clock_bounds_a_run_without_epochs_or_max_steps(fields, total_steps):
    # 1,200 images in batches of 128: 9 steps an epoch.
    config = _changed("fast", data__split="test[:1200]", **fields)
    validate(config)
    assert planned_steps(config) == (9, total_steps)
