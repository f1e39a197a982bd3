"""Where training time goes: FLOPs counted from the models, and op time from a tf.profiler
trace, by network, pass and kind of op."""

import collections
import math
import pathlib
import re

import keras
from keras import layers
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from dcgan.core.config import UPDATES

__all__ = ["OP_PARTS", "forward_flops", "op_seconds", "step_passes", "train_step_flops"]

_CONVOLUTIONS = (layers.Conv1D, layers.Conv2D, layers.Conv3D)
_TRANSPOSED_CONVOLUTIONS = (layers.Conv1DTranspose, layers.Conv2DTranspose,
                            layers.Conv3DTranspose)


def _multiply_adds(layer, input_shape, output_shape) -> int:
    """Multiply-adds per example of one call of `layer` from [batch, ...] input_shape to
    [batch, ...] output_shape."""
    if isinstance(layer, keras.Model):
        return forward_flops(layer) // 2
    if isinstance(layer, layers.SpectralNormalization):
        # The power iteration on the kernel runs once per batch, not per example.
        return _multiply_adds(layer.layer, input_shape, output_shape)
    if isinstance(layer, layers.Dense):
        return math.prod(output_shape[1:]) * input_shape[-1]
    if isinstance(layer, _CONVOLUTIONS + _TRANSPOSED_CONVOLUTIONS):
        channels_last = layer.data_format == "channels_last"
        spatial = slice(1, -1) if channels_last else slice(2, None)
        in_channels = input_shape[-1 if channels_last else 1]
        per_position = math.prod(layer.kernel_size) * in_channels * layer.filters
        if isinstance(layer, _TRANSPOSED_CONVOLUTIONS):
            # Each input position scatters a kernel-sized patch: the gradient of a
            # convolution with respect to its input, which is how TensorFlow runs it.
            return math.prod(input_shape[spatial]) * per_position
        return math.prod(output_shape[spatial]) * per_position // layer.groups
    if any(len(weight.shape) >= 2 for weight in layer.weights):
        raise ValueError(f"forward_flops does not count layer {layer.name!r} of type "
                         f"{type(layer).__name__}, which has a weight matrix.")
    return 0


def forward_flops(model: keras.Model) -> int:
    """FLOPs per example of one forward pass of a Keras Functional or Sequential model,
    counted from its layers' shapes (the batch size does not matter).

    Counted, at 2 FLOPs per multiply-add: Dense (including the class embeddings, a
    Dense on a one-hot label), Conv1D/2D/3D (grouped too), Conv1D/2D/3DTranspose (input
    positions x kernel x in x out channels, what TensorFlow computes, padding included),
    the layer inside SpectralNormalization, and nested models. Ignored: bias adds, batch
    and group normalisation, activations, dropout, up-sampling, the projection
    discriminator's dot product, and SpectralNormalization's power iteration (once per
    batch): for the networks of `dcgan.models` these add under 1% to TensorFlow's own
    count (tests/test_bench.py compares them). They are memory-bound, though, so their
    share of the time is larger than their share of the FLOPs.

    Raises:
      ValueError: for a layer with a weight matrix (rank >= 2) of a type not counted
        above, instead of leaving its FLOPs out silently.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        total += 2 * _multiply_adds(layer, tuple(layer.input.shape),
                                    tuple(layer.output.shape))
    return total


def step_passes(update, n_critic=1, gp_weight=0.0, r1_weight=0.0, r2_weight=0.0,
                penalty_every=1) -> tuple[float, float]:
    """(G, D) cost of one `dcgan.gan.step.GanStep` step per real image it reads, in
    forward passes of each network over one image.

    Convention: a backward pass that yields the weights' gradients (and, for the layers
    below, the inputs') costs 2 forward passes; one that yields only the inputs'
    gradients costs 1 (D's, when G's gradient flows through it: the graph prunes D's
    unused weight gradients). The first layer's input gradient, which nothing needs, is
    counted too (at most 6% of a network). In passes over one batch:

      simultaneous: G forward 1 + backward 2; D on real images forward 1 + backward 2,
        on generated ones forward 1 + backward 2 for D's gradients + 1 more (to its
        inputs) for G's: G 3, D 7.
      alternating, per D update (n_critic of them, each on its own batch): G forward 1
        (no tape), D 2 x (forward 1 + backward 2); then the G update on fresh noise: G
        forward 1 + backward 2, D forward 1 + backward to its inputs 1. Per image read:
        G (n_critic + 3) / n_critic, D (6 n_critic + 2) / n_critic.
      each penalty (gp_weight, r1_weight, r2_weight > 0), per D update that computes
        it: D forward 1 + the inner backward to the inputs 1, and the outer backward
        through both for D's weights 2 x 2: D 6 more; lazy ones, in one D update in
        `penalty_every`, 6 / penalty_every on average.

    Args:
      update: one of UPDATES.
      n_critic: D updates per step, each on its own batch.
      gp_weight, r1_weight, r2_weight: the penalties' weights; only whether they are 0
        matters.
      penalty_every: the D updates per update that computes the penalties (>= 1).

    Returns:
      (generator passes, discriminator passes) per image read, floats >= 1.

    Raises:
      ValueError: for an unknown update, or n_critic < 1 or > 1 without `alternating`.
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    if n_critic < 1 or (n_critic > 1 and update != "alternating"):
        raise ValueError(f"n_critic must be 1, or more with the alternating update; got "
                         f"{n_critic} with {update!r}")
    penalty_passes = 6 * ((gp_weight > 0) + (r1_weight > 0) + (r2_weight > 0)) / penalty_every
    if update == "simultaneous":
        return 3.0, 7.0 + penalty_passes
    return ((n_critic + 3) / n_critic,
            (n_critic * (6 + penalty_passes) + 2) / n_critic)


def train_step_flops(generator, discriminator, update, n_critic=1, gp_weight=0.0,
                     r1_weight=0.0, r2_weight=0.0, penalty_every=1) -> float:
    """FLOPs of one training step per real image it reads: `step_passes` weighted by
    `forward_flops` of each network (their convention and what they ignore). Losses
    and optimizer updates are left out (per step, not per image).

    Args:
      generator, discriminator: Keras models (see `dcgan.models`).
      update, n_critic, gp_weight, r1_weight, r2_weight, penalty_every: as in
        `step_passes`.

    Raises:
      ValueError: as `step_passes` and `forward_flops` do.
    """
    generator_passes, discriminator_passes = step_passes(
        update, n_critic, gp_weight, r1_weight, r2_weight, penalty_every)
    return (generator_passes * forward_flops(generator)
            + discriminator_passes * forward_flops(discriminator))


# Parts of a step's op time, in `op_seconds`'s keys; the first that matches an op wins.
#   matmul/conv: the ops whose FLOPs `forward_flops` counts, and their gradients.
#   normalization: batch, group and spectral normalisation, fused or element-wise.
#   cast: dtype casts (under mixed precision: variables to the compute dtype and back).
#   optimizer: Adam's updates (Keras' element-wise ones or the fused ApplyAdam).
#   layout: transposes and oneDNN reorders between memory layouts.
#   input: decoding and parsing in the input pipeline (off the step's path once cached).
#   other: activations, losses, noise, gradient sums, the step loop.
OP_PARTS = ("matmul/conv", "normalization", "cast", "optimizer", "layout", "input", "other")


def _op_part(op_name, op_type):
    if re.search("conv[123]d|matmul", op_type, re.IGNORECASE):
        return "matmul/conv"
    if "normalization" in op_name:
        return "normalization"
    if op_type == "Cast":
        return "cast"
    if "ApplyAdam" in op_type or re.search(r"(^|/)adam(_\d+)?/", op_name):
        return "optimizer"
    if re.search("transpose|reorder|tomkl|mkltotf|conversion", op_type, re.IGNORECASE):
        return "layout"
    if re.search("DecodeImage|ParseExample", op_type):
        return "input"
    return "other"


def op_seconds(xspace_path) -> collections.Counter:
    """Seconds of TensorFlow op execution in a tf.profiler trace, summed over threads, by
    (network, pass, part, op type): network "generator", "discriminator" or "other"
    (losses, optimizer updates, the step loop); pass "forward" or "backward" (under a
    gradient tape); part one of OP_PARTS.

    The host plane names each op's event `<op name>:<op type>`, and op names carry the
    Keras model's name (`tutorial_generator/...`), the layer's (`batch_normalization_1`)
    and `gradient_tape/` for gradients.
    """
    space = xplane_pb2.XSpace()
    space.ParseFromString(pathlib.Path(xspace_path).read_bytes())
    seconds = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op_name, _, op_type = name.rpartition(":")
                if not op_name or "::" in name or " " in name:
                    continue  # Not an op: a runtime (`EagerExecute`) or tf.data event.
                network = next((network for network in ("generator", "discriminator")
                                if network in op_name), "other")
                gradient = "backward" if "gradient_tape/" in op_name else "forward"
                op_type = op_type.removeprefix("_MklNative")
                seconds[network, gradient, _op_part(op_name, op_type), op_type] += (
                    event.duration_ps * 1e-12)
    return seconds
