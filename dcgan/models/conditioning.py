"""The ends every builder shares: the inputs of G and D and D's logit head, where a
conditional model takes its class labels.

With `ModelConfig.num_classes` > 0 both networks also take int32 class labels [batch]
(`registry.model_input` builds what they are called with): G concatenates z with the
label's learned embedding, and D sees the label as `ModelConfig.conditioning` says. A
builder gets this for free by taking its inputs from `generator_inputs` /
`discriminator_inputs` and ending in `discriminator_head`.
"""

import keras
from keras import layers

from dcgan.core.config import ModelConfig

__all__ = ["IMAGE_SHAPE", "discriminator_head", "discriminator_inputs", "generator_inputs"]

IMAGE_SHAPE = (28, 28, 1)
# Length of G's learned class embedding, concatenated to z: ample for telling 10 classes
# apart, and half of z's 100, so the noise still carries most of the input.
GENERATOR_CLASS_EMBEDDING_DIM = 50


def _labels_input():
    return keras.Input(shape=(), dtype="int32", name="labels")


def _class_embedding(num_classes, labels, dim, spectral_norm=False):
    """A learned float vector [batch, dim] per int label [batch] in [0, num_classes).

    An embedding table written as a bias-free Dense layer on the one-hot label, so that
    SpectralNormalization, which needs a `kernel`, can wrap it.
    """
    one_hot = layers.CategoryEncoding(num_classes, output_mode="one_hot",
                                      name="class_one_hot")(labels)
    table = layers.Dense(dim, use_bias=False, name="class_embedding")
    if spectral_norm:
        table = layers.SpectralNormalization(table, name="class_embedding_sn")
    return table(one_hot)


def generator_inputs(config: ModelConfig):
    """(the model's inputs, what the network maps to images [batch, latent_dim]): z, or
    [z, labels] and z concatenated with the label's embedding."""
    z = keras.Input(shape=(config.noise_dim,), name="z")
    if not config.num_classes:
        return z, z
    labels = _labels_input()
    embedded = _class_embedding(config.num_classes, labels, GENERATOR_CLASS_EMBEDDING_DIM)
    return [z, labels], layers.Concatenate(name="z_and_class")([z, embedded])


def discriminator_inputs(config: ModelConfig):
    """(the model's inputs, what the convolutions see [batch, 28, 28, channels]): images,
    or [images, labels] and, with concat conditioning, the images with the label's
    learned 28x28 map as a second channel (Mirza & Osindero 2014's input concatenation
    for convolutions)."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    if not config.num_classes:
        return images, images
    labels = _labels_input()
    if config.conditioning == "projection":
        return [images, labels], images
    class_map = layers.Reshape(IMAGE_SHAPE)(
        _class_embedding(config.num_classes, labels, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]))
    return [images, labels], layers.Concatenate(name="images_and_class")([images, class_map])


def discriminator_head(config: ModelConfig, inputs, features, name, spectral_norm=False):
    """D from its `inputs` (see `discriminator_inputs`) and its features phi(x)
    [batch, F]: float32 logits [batch, 1] even under a mixed-precision policy.

    logit = psi(phi(x)), psi linear; with projection conditioning
    logit = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3), where the
    embedding of y is [batch, F]. `spectral_norm` normalises psi and the embedding.
    """
    if spectral_norm:
        logits = layers.SpectralNormalization(layers.Dense(1), dtype="float32",
                                              name="logits")(features)
    else:
        logits = layers.Dense(1, dtype="float32", name="logits")(features)
    if config.num_classes and config.conditioning == "projection":
        embedded = _class_embedding(config.num_classes, inputs[1], features.shape[-1],
                                    spectral_norm)
        projection = layers.Dot(axes=1, dtype="float32", name="class_projection")(
            [embedded, features])
        logits = layers.Add(dtype="float32", name="conditional_logits")([logits, projection])
    return keras.Model(inputs, logits, name=name)
