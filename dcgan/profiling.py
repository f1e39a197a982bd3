"""Where training time goes: op time from a tf.profiler trace, by network and pass."""

import collections
import pathlib

from tensorflow.tsl.profiler.protobuf import xplane_pb2

__all__ = ["op_seconds"]


def op_seconds(xspace_path) -> collections.Counter:
    """Seconds of TensorFlow op execution in a tf.profiler trace, summed over threads, by
    (network, pass, op type): network "generator", "discriminator" or "other" (losses,
    optimizer updates, the step loop); pass "forward" or "backward" (under a gradient
    tape).

    The host plane names each op's event `<op name>:<op type>`, and op names carry the
    Keras model's name (`tutorial_generator/...`) and `gradient_tape/` for gradients.
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
                seconds[network, gradient, op_type.removeprefix("_MklNative")] += (
                    event.duration_ps * 1e-12)
    return seconds
