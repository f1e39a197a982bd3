"""The override table: every flag names a real config field, train.py defines it with the
field's documentation, and sweep specs and flags set the same fields."""

import dataclasses

import pytest
from conftest import train_binary

from dcgan.core.config import TrainConfig
from dcgan.core.errors import ConfigError
from dcgan.experiments import sweeps
from dcgan.recipes import overrides
from dcgan.recipes.presets import PRESETS


def _field(path):
    """The dataclasses.Field at dotted `path` of TrainConfig, and its default value."""
    owner = TrainConfig()
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    [field] = [f for f in dataclasses.fields(owner) if f.name == name]
    return field, getattr(owner, name)


@pytest.mark.parametrize("name", sorted(overrides.OVERRIDES))
def test_every_entry_names_a_field_of_its_type(name):
    override = overrides.OVERRIDES[name]
    assert override.field.count(".") <= 1  # apply() replaces two levels deep at most.
    field, default = _field(override.field)
    assert isinstance(default, override.type) or default is None, (field, default)
    if override.allowed() is not None:
        assert set(default if override.type is tuple else [default]) <= set(override.allowed())


def test_train_py_defines_every_flag_with_the_field_documentation():
    train = train_binary()
    for name in overrides.OVERRIDES:
        flag = train.FLAGS[name]
        assert flag.default is None
        assert flag.help.endswith(overrides.help_text(name))  # Enums start with <choices>.
    assert "Adam step size" in overrides.help_text("g_learning_rate")
    assert overrides.help_text("batch_size").startswith(
        "data.global_batch_size: images per batch across all replicas.")


def test_overrides_apply_together_and_parse_their_types():
    # n_critic=1 with the simultaneous update is valid only once both are set.
    config = sweeps.parse_config("wgan_gp:update=simultaneous:n_critic=1:jit_compile=true"
                                 ":g_beta1=0.25:d_beta2=0.99:max_train_minutes=2")
    assert (config.update, config.n_critic, config.jit_compile) == ("simultaneous", 1, True)
    assert config.generator_optimizer == dataclasses.replace(
        PRESETS["wgan_gp"].generator_optimizer, beta_1=0.25)
    assert config.discriminator_optimizer == dataclasses.replace(
        PRESETS["wgan_gp"].discriminator_optimizer, beta_2=0.99)
    assert config.max_train_minutes == 2.0
    assert overrides.apply(config, {"batch_size": None}) == config
    with pytest.raises(ConfigError, match="batch_size must be of type int"):
        overrides.parse("batch_size", "big")
    with pytest.raises(ConfigError, match="at least 1"):
        overrides.parse("epochs", "0")
    with pytest.raises(ConfigError, match="Unknown update 'both'"):
        overrides.parse("update", "both")
    assert overrides.parse("augment", "translation,cutout") == ("translation", "cutout")
    # sweep.py's --configs is a comma-separated list: there the names join with "+".
    assert sweeps.parse_config("fast:augment=translation+cutout").augment == (
        "translation", "cutout")
    with pytest.raises(ConfigError, match="Unknown augment"):
        overrides.parse("augment", "translation,flip")
    assert overrides.apply(config, {"augment": ["cutout"]}).augment == ("cutout",)
