import keras
import numpy as np
import pytest

from dcgan import models
from dcgan.config import SIGMOID_RANGE, TANH_RANGE, ModelConfig

TUTORIAL = ModelConfig("tutorial", noise_dim=100)
FASHION128 = ModelConfig("fashion128", noise_dim=128)
TUTORIAL_CRITIC = ModelConfig("tutorial_critic", noise_dim=100)
FAST = ModelConfig("fast", noise_dim=100)
ALL = [TUTORIAL, FASHION128, TUTORIAL_CRITIC, FAST]


@pytest.mark.parametrize("config, generator_params, discriminator_params", [
    (TUTORIAL, 2_330_944, 212_865),  # As printed by the TensorFlow DCGAN tutorial.
    (FASHION128, 2_155_137, 1_113_345),
    (TUTORIAL_CRITIC, 2_330_944, 212_865 + 2 * (64 + 128)),  # + layer-norm scales, offsets
    # G: dense 100*7*7*256 + BN 4*12544 + k3 256->128 + BN 4*128 + k4 128->64 + BN 4*64
    #    + k4 64->1 with bias. D: k4 convs 1->64, 64->128 and dense 6272->1, with biases,
    #    plus spectral norm's power-iteration vector u (64, 128, 1).
    (FAST, 100 * 12544 + 4 * 12544 + 9 * 256 * 128 + 4 * 128 + 16 * 128 * 64 + 4 * 64
     + 16 * 64 + 1,
     (16 * 64 + 64) + (16 * 64 * 128 + 128) + (7 * 7 * 128 + 1) + 64 + 128 + 1),
])
def test_parameter_counts(config, generator_params, discriminator_params):
    assert models.build_generator(config).count_params() == generator_params
    assert models.build_discriminator(config).count_params() == discriminator_params


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("config", ALL)
def test_shapes_and_dtypes(policy, config):
    generator = models.build_generator(config)
    discriminator = models.build_discriminator(config)
    z = np.random.default_rng(0).normal(size=(3, config.noise_dim)).astype(np.float32)
    images = generator(z, training=False)
    logits = discriminator(images, training=False)
    assert tuple(images.shape) == (3, 28, 28, 1)
    assert tuple(logits.shape) == (3, 1)
    assert images.dtype == "float32" and logits.dtype == "float32"
    expected_compute = "bfloat16" if policy == "mixed_bfloat16" else "float32"
    assert generator.get_layer(index=1).compute_dtype == expected_compute
    assert discriminator.get_layer(index=1).compute_dtype == expected_compute


@pytest.mark.parametrize("config, expected_range", [(TUTORIAL, TANH_RANGE),
                                                    (FASHION128, SIGMOID_RANGE),
                                                    (FAST, TANH_RANGE)])
def test_generator_output_range(config, expected_range):
    assert models.output_range(config.architecture) == expected_range
    generator = models.build_generator(config)
    z = 50.0 * np.random.default_rng(1).normal(size=(16, config.noise_dim)).astype(np.float32)
    images = keras.ops.convert_to_numpy(generator(z, training=True))
    low, high = expected_range
    assert images.min() >= low and images.max() <= high
    assert images.min() < low + 0.5 * (high - low) < images.max()


@pytest.mark.parametrize("config", ALL)
def test_discriminator_returns_unbounded_logits(config):
    discriminator = models.build_discriminator(config)
    head = discriminator.layers[-1]
    head = getattr(head, "layer", head)  # Inside SpectralNormalization, if any.
    assert head.activation is keras.activations.linear
    head.bias.assign(head.bias * 0 + 7.0)
    head.kernel.assign(head.kernel * 0)
    images = np.zeros((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(discriminator(images, training=False), 7.0)


def test_critic_scores_each_example_on_its_own_and_deterministically():
    """What the gradient penalty assumes: no batch statistics, no dropout."""
    critic = models.build_discriminator(TUTORIAL_CRITIC)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
    scores = critic(images, training=True)
    other_batch = np.concatenate([images[:1], np.zeros_like(images[1:])])
    np.testing.assert_allclose(critic(other_batch, training=True)[0], scores[0], rtol=1e-5)
    np.testing.assert_array_equal(critic(images, training=True), scores)


def test_synchronized_batch_norm_flag():
    config = ModelConfig("tutorial", synchronized_batch_norm=True)
    norms = [layer for layer in models.build_generator(config).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.synchronized for layer in norms)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="fashion128.*fast.*tutorial"):
        models.build_generator(ModelConfig("dcgan64"))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        models.register_architecture("tutorial", models.tutorial_generator,
                                     models.tutorial_discriminator, TANH_RANGE)
