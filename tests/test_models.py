import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan import models
from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, ModelConfig
from dcgan.models import builders
from dcgan.models.conditioning import discriminator_head
from dcgan.models.normalization import FusedBatchNormalization

TUTORIAL = ModelConfig("tutorial", noise_dim=100)
FASHION128 = ModelConfig("fashion128", noise_dim=128)
TUTORIAL_CRITIC = ModelConfig("tutorial_critic", noise_dim=100)
FAST = ModelConfig("fast", noise_dim=100)
FAST_SN = ModelConfig("fast_sn", noise_dim=100)
FAST_NF = ModelConfig("fast_nf", noise_dim=100)
FAST_WIDE_D = ModelConfig("fast_wide_d", noise_dim=100)
FAST_DEEP_D = ModelConfig("fast_deep_d", noise_dim=100)
FAST_DEEP_GD = ModelConfig("fast_deep_gd", noise_dim=100)
# The default's networks with a D that scores each image on its own.
FAST_DEEP_GD_NF = ModelConfig("fast_deep_gd_nf", noise_dim=100)
FAST_DEEP_GD_LN = ModelConfig("fast_deep_gd_ln", noise_dim=100)
FAST_DEEP_GD_SN = ModelConfig("fast_deep_gd_sn", noise_dim=100)
PER_EXAMPLE_DEEP = [FAST_DEEP_GD_NF, FAST_DEEP_GD_LN, FAST_DEEP_GD_SN]
ALL = [TUTORIAL, FASHION128, TUTORIAL_CRITIC, FAST, FAST_SN, FAST_NF, FAST_WIDE_D, FAST_DEEP_D,
       FAST_DEEP_GD, *PER_EXAMPLE_DEEP]


# G: dense 100*7*7*256 + BN 4*12544 + k3 256->128 + BN 4*128 + k4 128->64 + BN 4*64
#    + k4 64->1 with bias. D: k4 convs 1->64 with bias, 64->128 without, BN 4*128, and
#    dense 6272->1. The spectral-norm D has a bias instead of BN in its second layer,
#    plus the power-iteration vectors u (64, 128, 1); the D without normalisation has
#    neither. The wide D doubles every width; the deep D adds a k3 128->128 conv and its BN,
#    the deep G a k3 64->64 one and its BN.
FAST_GENERATOR_PARAMS = (100 * 12544 + 4 * 12544 + 9 * 256 * 128 + 4 * 128 + 16 * 128 * 64
                         + 4 * 64 + 16 * 64 + 1)
FAST_DISCRIMINATOR_PARAMS = ((16 * 64 + 64) + 16 * 64 * 128 + 4 * 128 + (7 * 7 * 128 + 1))
FAST_SN_DISCRIMINATOR_PARAMS = ((16 * 64 + 64) + (16 * 64 * 128 + 128) + (7 * 7 * 128 + 1)
                                + 64 + 128 + 1)
FAST_NF_DISCRIMINATOR_PARAMS = FAST_SN_DISCRIMINATOR_PARAMS - (64 + 128 + 1)
FAST_WIDE_D_DISCRIMINATOR_PARAMS = ((16 * 128 + 128) + 16 * 128 * 256 + 4 * 256
                                    + (7 * 7 * 256 + 1))
FAST_DEEP_D_DISCRIMINATOR_PARAMS = FAST_DISCRIMINATOR_PARAMS + 9 * 128 * 128 + 4 * 128
FAST_DEEP_G_GENERATOR_PARAMS = FAST_GENERATOR_PARAMS + 9 * 64 * 64 + 4 * 64
# The deep D without BN: biases in both k4 128-filter and the k3 convs instead (nf), or
# layer-norm scales and offsets (ln), or biases and the power-iteration vectors u (sn).
DEEP_D_CONVS = (16 * 64 + 64) + 16 * 64 * 128 + 9 * 128 * 128 + (7 * 7 * 128 + 1)
PER_EXAMPLE_DEEP_D_PARAMS = [DEEP_D_CONVS + 2 * 128, DEEP_D_CONVS + 2 * (2 * 128),
                             DEEP_D_CONVS + 2 * 128 + (64 + 128 + 128 + 1)]


@pytest.mark.parametrize("config, generator_params, discriminator_params", [
    (TUTORIAL, 2_330_944, 212_865),  # As printed by the TensorFlow DCGAN tutorial.
    (FASHION128, 2_155_137, 1_113_345),
    (TUTORIAL_CRITIC, 2_330_944, 212_865 + 2 * (64 + 128)),  # + layer-norm scales, offsets
    (FAST, FAST_GENERATOR_PARAMS, FAST_DISCRIMINATOR_PARAMS),
    (FAST_SN, FAST_GENERATOR_PARAMS, FAST_SN_DISCRIMINATOR_PARAMS),
    (FAST_NF, FAST_GENERATOR_PARAMS, FAST_NF_DISCRIMINATOR_PARAMS),
    (FAST_WIDE_D, FAST_GENERATOR_PARAMS, FAST_WIDE_D_DISCRIMINATOR_PARAMS),
    (FAST_DEEP_D, FAST_GENERATOR_PARAMS, FAST_DEEP_D_DISCRIMINATOR_PARAMS),
    (FAST_DEEP_GD, FAST_DEEP_G_GENERATOR_PARAMS, FAST_DEEP_D_DISCRIMINATOR_PARAMS),
    *[(config, FAST_DEEP_G_GENERATOR_PARAMS, params)
      for config, params in zip(PER_EXAMPLE_DEEP, PER_EXAMPLE_DEEP_D_PARAMS)],
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
                                                    (FAST, TANH_RANGE),
                                                    (FAST_SN, TANH_RANGE)])
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


# (Spectral norm's power iteration moves its weights at each call in training.)
@pytest.mark.parametrize("config", [TUTORIAL_CRITIC, FAST_NF, FAST_DEEP_GD_NF, FAST_DEEP_GD_LN])
def test_critic_scores_each_example_on_its_own_and_deterministically(config):
    """What the gradient penalties assume: no batch statistics, no dropout."""
    critic = models.build_discriminator(config)
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


@pytest.mark.parametrize("config, layer_type, synchronized", [
    (FAST, FusedBatchNormalization, False),
    (dataclasses.replace(FAST, fused_batch_norm=False), keras.layers.BatchNormalization, False),
    (dataclasses.replace(FAST, synchronized_batch_norm=True), keras.layers.BatchNormalization,
     True),
])
def test_batch_norm_is_fused_unless_synchronized_or_turned_off(config, layer_type, synchronized):
    norms = [layer for layer in models.build_generator(config).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3
    assert all(type(layer) is layer_type and layer.synchronized == synchronized
               for layer in norms)


# Float32 agrees to rounding; bf16 outputs are rounded to bf16's 8 bits (2^-8 relative).
@pytest.mark.parametrize("policy, rtol", [("float32", 2e-5), ("mixed_bfloat16", 1e-2)])
@pytest.mark.parametrize("shape", [(8, 7, 7, 16), (8, 48)], ids=["conv", "dense"])
def test_fused_batch_norm_trains_as_keras_batch_norm(policy, rtol, shape):
    """Against Keras' own layer with the same weights, two training steps' worth of calls:
    the outputs, the gradients of a loss with respect to the inputs, gamma and beta, and
    the moving mean and (biased) variance."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, shape), tf.float32)
    weights = tf.constant(rng.normal(size=shape), tf.float32)
    with models.global_policy(policy):
        reference, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
        for layer in (reference, fused):
            layer.build(shape)
        fused.set_weights(reference.get_weights()[:2] + [rng.normal(size=shape[-1]),
                                                        rng.uniform(1, 2, shape[-1])])
        reference.set_weights(fused.get_weights())
        results = []
        for layer in (reference, fused):
            for _ in range(2):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.cast(layer(x, training=True), tf.float32)
                    loss = tf.reduce_sum(y * weights + y**3)
                gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
            results.append([y, *gradients, layer.moving_mean, layer.moving_variance])
    for name, expected, actual in zip(("y", "dx", "dgamma", "dbeta", "moving_mean",
                                       "moving_variance"), *results):
        expected, actual = np.asarray(expected), np.asarray(actual)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual, expected, atol=rtol * scale, err_msg=name)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="fashion128.*fast.*tutorial"):
        models.build_generator(ModelConfig("dcgan64"))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        models.register_architecture("tutorial", builders.tutorial_generator,
                                     builders.tutorial_discriminator, TANH_RANGE,
                                     mixes_examples=False)


# Conditional networks: Fashion-MNIST's 10 classes.
CONDITIONINGS = pytest.mark.parametrize("conditioning", ["projection", "concat"])


def _conditional(config, conditioning="projection"):
    return dataclasses.replace(config, num_classes=10, conditioning=conditioning)


@pytest.mark.parametrize("config, conditioning, generator_params, discriminator_params", [
    # G: + one-hot -> 50-d embedding (10 x 50) and 50 more inputs to the first dense layer.
    # D projection: + a 10 x 6272 embedding of the flattened 7x7x128 features.
    (TUTORIAL, "projection", 2_330_944 + 10 * 50 + 50 * 12544, 212_865 + 10 * 6272),
    # D concat: + a 10 x 784 embedding (the class map) and the first 5x5 conv's second
    # input channel (25 x 64).
    (TUTORIAL, "concat", 2_330_944 + 10 * 50 + 50 * 12544, 212_865 + 10 * 784 + 25 * 64),
    (FAST, "projection", FAST_GENERATOR_PARAMS + 10 * 50 + 50 * 12544,
     FAST_DISCRIMINATOR_PARAMS + 10 * 6272),
    # Spectral norm on the projection embedding adds its power-iteration vector (6272).
    (FAST_SN, "projection", FAST_GENERATOR_PARAMS + 10 * 50 + 50 * 12544,
     FAST_SN_DISCRIMINATOR_PARAMS + 10 * 6272 + 6272),
])
def test_conditional_parameter_counts(config, conditioning, generator_params,
                                      discriminator_params):
    config = _conditional(config, conditioning)
    assert models.build_generator(config).count_params() == generator_params
    assert models.build_discriminator(config).count_params() == discriminator_params


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("config", ALL)
@CONDITIONINGS
def test_conditional_shapes_dtypes_and_labels(policy, config, conditioning):
    config = _conditional(config, conditioning)
    generator = models.build_generator(config)
    discriminator = models.build_discriminator(config)
    z = tf.random.stateless_normal([2, config.noise_dim], seed=[0, 0])
    z = tf.concat([z, z], axis=0)  # The same noise with other labels.
    labels = tf.constant([0, 7, 3, 9], tf.int64)  # As the data pipeline yields them.
    images = generator(models.model_input(z, labels), training=False)
    logits = discriminator(models.model_input(images, labels), training=False)
    assert tuple(images.shape) == (4, 28, 28, 1) and images.dtype == "float32"
    assert tuple(logits.shape) == (4, 1) and logits.dtype == "float32"
    assert not np.allclose(images[:2], images[2:])  # The label reaches G's output...
    other_logits = discriminator(models.model_input(images, labels[::-1]), training=False)
    assert not np.allclose(logits, other_logits)  # ... and D's.
    assert models.generator_num_classes(generator) == 10
    assert models.generator_noise_dim(generator) == config.noise_dim


def test_projection_head_against_hand_computed_logits():
    """logit = psi(phi) + <embed(y), phi> on features phi of length 3 and 2 classes."""
    config = ModelConfig(num_classes=2, conditioning="projection")
    features = keras.Input(shape=(3,), name="images")
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    head = discriminator_head(config, [features, labels], features, "head")
    head.get_layer("logits").set_weights([np.array([[1.0], [2.0], [3.0]]), np.array([0.5])])
    head.get_layer("class_embedding").set_weights([np.array([[1.0, 0.0, -1.0],
                                                             [0.5, 0.5, 0.5]])])
    phi = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0], [2.0, 0.0, 1.0]], np.float32)
    y = np.array([0, 1, 0], np.int32)
    # psi: 1+2+3+0.5 = 6.5, 2+0+3+0.5 = 5.5 (twice); projection: 1-1 = 0, 1+0.5 = 1.5,
    # 2-1 = 1.
    expected = [[6.5], [7.0], [6.5]]
    np.testing.assert_allclose(head([phi, y], training=False), expected, rtol=1e-6)


def test_unconditional_models_take_no_labels():
    assert models.generator_num_classes(models.build_generator(TUTORIAL)) == 0
    assert models.model_input("z") == "z"
    assert models.model_input("z", "labels") == ["z", "labels"]


@pytest.mark.parametrize("overrides, message", [
    ({"num_classes": 1}, "num_classes must be 0"),
    ({"num_classes": -10}, "num_classes must be 0"),
    ({"num_classes": 10, "conditioning": "hidden"}, "conditioning must be one of"),
])
def test_invalid_conditioning_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)





@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
@pytest.mark.parametrize("num_classes", [0, 10])
def test_the_registry_says_which_discriminators_mix_examples(architecture, num_classes):
    """`validate` reads `mixes_examples` off the registry instead of building D: it must
    say what the built D is, a network with batch norm."""
    discriminator = models.build_discriminator(ModelConfig(architecture,
                                                           num_classes=num_classes))
    has_batch_norm = any(isinstance(layer, keras.layers.BatchNormalization)
                         for layer in discriminator.layers)
    assert models.mixes_examples(architecture) == has_batch_norm
