"""The GAN training step: D and G updates on every replica of a strategy.

Knows nothing of files, flags or loops over epochs: `GanStep.from_config` builds it, and
`GanStep.train(iterator, num_steps)` runs `num_steps` steps inside one `tf.function` call
and returns their metrics by name.
"""

import tensorflow as tf

from dcgan import models
from dcgan.core.config import PenaltyConfig, TrainConfig
from dcgan.gan import augment, ema, losses, optimizers, penalties, schedules

__all__ = ["METRIC_NAMES", "GanStep"]

# The keys of what `GanStep.train` returns, in the order of losses.csv; each is the mean
# over the global batch (and over the step's critic updates for D's): both losses, D's mean
# probability (sigmoid of its output) on real and on generated images, and D's weighted
# penalties. D minimises d_loss + d_penalty.
METRIC_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_penalty")

# How one step updates the two networks (UPDATES):
#   alternating:  n_critic D updates, each on its own batch, then G's gradients through
#                 the updated D on fresh noise (Goodfellow et al. 2014, algorithm 1, with
#                 k = n_critic). G runs forward n_critic + 1 times.
#   simultaneous: both gradients from one forward pass, as in the TensorFlow DCGAN
#                 tutorial. G runs forward once: about a quarter less compute.
#
# Conditional models: generated images take the labels of the real batch they are
# compared with, so D sees real and generated batches of the same classes (as often as
# the data holds each class), and the gradient penalty interpolates within a class.


class GanStep:
    """One GAN training step, `alternating` or `simultaneous` (see UPDATES): one G update,
    after `n_critic` D updates on as many batches.

    Build it with `from_config`, under `strategy.scope()`; the arguments below are what
    it derives from a `TrainConfig`.

    Args:
      networks: `dcgan.models.Networks`: G and D, both conditional or both not, and
        None or a model built like G whose weights become an exponential moving average
        of G's (`dcgan.gan.ema`) after every G update, given exactly when ema_decay is set.
      generator_optimizer, discriminator_optimizer: Keras optimizers; a
        `LossScaleOptimizer` scales the loss and skips non-finite updates.
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)` per example
        (see `dcgan.gan.losses`).
      noise: a `tf.random.Generator` created under the strategy's scope, so each replica
        draws its own stream; it is part of the checkpoint.
      global_batch_size: images per step over all replicas; per-example losses are
        averaged over it, so gradients summed over replicas are the global mean.
      update, jit_compile, n_critic, penalties, ema_decay, augment: the `TrainConfig`
        fields of those names; synchronized_batch_norm: its model's. Each step's n_critic
        D updates read the iterator's next batches; the augmentation draws fresh
        parameters from `noise` for every batch, and the penalties
        (`dcgan.gan.penalties`) are taken at the images D sees.
    """

    def __init__(self, networks, generator_optimizer, discriminator_optimizer, loss_fn, noise,
                 global_batch_size, update="alternating", jit_compile=False, n_critic=1,
                 penalties=PenaltyConfig(), ema_decay=0.0, augment=(),
                 synchronized_batch_norm=False):
        self.generator, self.discriminator, self.ema_generator = networks
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.loss_fn = loss_fn
        self.noise = noise
        self.global_batch_size = global_batch_size
        self.noise_dim = models.generator_noise_dim(self.generator)
        self.n_critic = n_critic
        self.penalties = penalties
        self.ema_decay = ema_decay
        self.augment = tuple(augment)
        self.pixel_range = models.generator_output_range(self.generator)
        self.conditional = bool(models.generator_num_classes(self.generator))
        self.strategy = tf.distribute.get_strategy()
        # An unbuilt LossScaleOptimizer returns a constant from scale_loss that the trace
        # would freeze, and Adam slots created lazily cannot be lifted out of a
        # tf.function: build both now.
        generator_optimizer.build(self.generator.trainable_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)
        self._replica_step = {"alternating": self._alternating_step,
                              "simultaneous": self._simultaneous_step}[update]
        # XLA compiles the forward and backward passes only. Noise is drawn and updates
        # are applied outside: under jit the same seed draws other numbers
        # (tensorflow#121243), and optimizer variables created in XLA cannot be lifted
        # out (keras-team/keras#19005). Synchronised batch norm all-reduces inside the
        # passes, which MirroredStrategy does by a merge_call that a nested tf.function
        # cannot make (outside XLA on GPUs): without XLA, its passes stay in the step's
        # own function.
        if jit_compile or not synchronized_batch_norm:
            self._d_gradients = tf.function(self._d_gradients, jit_compile=jit_compile)
            self._g_gradients = tf.function(self._g_gradients, jit_compile=jit_compile)
            self._both_gradients = tf.function(self._both_gradients, jit_compile=jit_compile)

    @classmethod
    def from_config(cls, config: TrainConfig, networks, noise, policy_name: str,
                    total_steps: int | None = None) -> "GanStep":
        """The step `config` describes, with new optimizers; call under `strategy.scope()`.

        Args:
          config: a TrainConfig that `dcgan.recipes.validation.validate` passed; its
            loss, update, n_critic, penalties, augmentation, ema_decay, jit_compile,
            optimizers (and fused_adam) and their schedule, and batch size are read.
          networks: `dcgan.models.Networks` built from `config.model`
            (`models.build_networks`), with an EMA generator exactly when
            `config.ema_decay` is set.
          noise: a `tf.random.Generator`, as for the constructor.
          policy_name: the Keras dtype policy in force ("mixed_float16" adds loss scaling).
          total_steps: the steps of the whole run, the horizon of `config.schedule`
            (see `dcgan.gan.schedules.optimizer_learning_rates`); only a constant rate
            without warm-up may leave it None.

        Raises:
          ConfigError: `config.loss` is not registered, or the learning-rate warm-up
            leaves no step to decay over.
          ValueError: the EMA generator is given without `config.ema_decay`, or missing;
            `total_steps` is missing for a schedule.
        """
        if (networks.ema_generator is not None) != bool(config.ema_decay):
            raise ValueError(f"ema_generator must be given exactly when ema_decay is set; "
                             f"ema_decay={config.ema_decay}")
        if total_steps is None and config.schedule.varies:
            raise ValueError(f"The learning-rate schedule {config.schedule.kind!r} needs the "
                             "run's total_steps.")
        g_learning_rate, d_learning_rate = schedules.optimizer_learning_rates(
            config, total_steps or 1)
        return cls(
            networks,
            optimizers.make_optimizer(config.generator_optimizer, policy_name,
                                      g_learning_rate, config.fused_adam),
            optimizers.make_optimizer(config.discriminator_optimizer, policy_name,
                                      d_learning_rate, config.fused_adam),
            losses.get_loss(config.loss), noise, config.data.global_batch_size,
            update=config.update, jit_compile=config.jit_compile, n_critic=config.n_critic,
            penalties=config.penalties, ema_decay=config.ema_decay, augment=config.augment,
            synchronized_batch_norm=config.model.synchronized_batch_norm)

    def _average(self, per_example):
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    def _d_probabilities(self, real_logits, fake_logits):
        """{"d_real": mean D(x), "d_fake": mean D(G(z))} over the global batch."""
        return {"d_real": self._average(tf.sigmoid(tf.reshape(real_logits, [-1]))),
                "d_fake": self._average(tf.sigmoid(tf.reshape(fake_logits, [-1])))}

    def _generate(self, z, labels):
        return self.generator(models.model_input(z, labels), training=True)

    def _critic(self, labels):
        """D as a function of images alone, as the penalties take it: for the `labels`
        (None: unconditional)."""
        def critic(images, training):
            return self.discriminator(models.model_input(images, labels), training=training)
        return critic

    def _d_penalty(self, real_images, fake_images, labels, alpha):
        """D's weighted penalties, averaged over the global batch (0 without any).

        With `penalties.every` = k > 1 they are lazy (StyleGAN2's lazy regularisation,
        Karras et al. 2020, section 4.1): computed only in D's updates whose count so far
        is a multiple of k (the first one included), with k times their weights, so
        that they weigh as much per update on average; 0 in the others, which skip
        their double backpropagation.
        """
        settings = self.penalties

        def weighted(scale):
            return self._average(scale * penalties.weighted_penalty(
                self._critic(labels), real_images, fake_images, alpha, settings.gp_weight,
                settings.r1_weight, settings.r2_weight))

        if not settings.any or settings.every == 1:
            return weighted(1.0)
        due = self.discriminator_optimizer.iterations % settings.every == 0
        return tf.cond(due, lambda: weighted(float(settings.every)), lambda: tf.zeros([]))

    def _augmented(self, images, parameters):
        """`images` as D sees them: through the augmentation with `parameters` (from
        `_augmentation`; None: as they are)."""
        if parameters is None:
            return images
        return augment.apply(images, self.augment, parameters, self.pixel_range)

    def _discriminate(self, real_images, fake_images, labels, alpha, augmentations):
        """D on both batches, separately so that batch norm never normalises real and
        generated images together (carpedm20/DCGAN-tensorflow#266), both with `labels`
        when conditional, and the losses of its logits.

        `augmentations`: the augmentation parameters of the real and of the generated
        batch (see `_augmented`).

        Returns:
          (real_logits, fake_logits, d_loss, g_loss, d_penalty), the last three means
          over the global batch; the penalties do not reach G.
        """
        real_images = self._augmented(real_images, augmentations[0])
        fake_images = self._augmented(fake_images, augmentations[1])
        critic = self._critic(labels)
        real_logits = critic(real_images, training=True)
        fake_logits = critic(fake_images, training=True)
        d_loss, g_loss = map(self._average, self.loss_fn(real_logits, fake_logits))
        d_penalty = self._d_penalty(real_images, tf.stop_gradient(fake_images), labels, alpha)
        return real_logits, fake_logits, d_loss, g_loss, d_penalty

    def _d_gradients(self, real_images, labels, z, alpha, augmentations):
        """-> (D's gradients, D's metrics by name (all but g_loss), real_logits)."""
        fake_images = self._generate(z, labels)
        with tf.GradientTape() as tape:
            real_logits, fake_logits, d_loss, _, d_penalty = self._discriminate(
                real_images, fake_images, labels, alpha, augmentations)
            scaled_loss = self.discriminator_optimizer.scale_loss(d_loss + d_penalty)
        gradients = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        metrics = {"d_loss": d_loss, "d_penalty": d_penalty,
                   **self._d_probabilities(real_logits, fake_logits)}
        return gradients, metrics, tf.stop_gradient(real_logits)

    def _g_gradients(self, real_logits, labels, z, augmentation):
        """G's gradients through the just-updated D (and the augmentation with parameters
        `augmentation`). `real_logits` are from the D step: the BCE losses ignore them and
        a loss that uses them gets them without paying for another pass over the real
        images."""
        with tf.GradientTape() as tape:
            fake_images = self._augmented(self._generate(z, labels), augmentation)
            fake_logits = self._critic(labels)(fake_images, training=True)
            g_loss = self._average(self.loss_fn(real_logits, fake_logits)[1])
            scaled_loss = self.generator_optimizer.scale_loss(g_loss)
        return tape.gradient(scaled_loss, self.generator.trainable_variables), g_loss

    def _both_gradients(self, real_images, labels, z, alpha, augmentations):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            real_logits, fake_logits, d_loss, g_loss, d_penalty = self._discriminate(
                real_images, self._generate(z, labels), labels, alpha, augmentations)
            scaled_d_loss = self.discriminator_optimizer.scale_loss(d_loss + d_penalty)
            scaled_g_loss = self.generator_optimizer.scale_loss(g_loss)
        d_gradients = d_tape.gradient(scaled_d_loss, self.discriminator.trainable_variables)
        g_gradients = g_tape.gradient(scaled_g_loss, self.generator.trainable_variables)
        metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_penalty": d_penalty,
                   **self._d_probabilities(real_logits, fake_logits)}
        return d_gradients, g_gradients, metrics

    def _noise(self, real_images):
        return self.noise.normal([tf.shape(real_images)[0], self.noise_dim])

    def _alpha(self, real_images):
        """The gradient penalty's interpolation weights, U[0, 1] per example; drawn only
        when it is computed, so runs without it keep their noise stream."""
        if not self.penalties.gp_weight:
            return None
        return self.noise.uniform([tf.shape(real_images)[0], 1, 1, 1])

    def _augmentation(self, real_images):
        """Fresh parameters of the augmentation for one batch (None without one). Drawn
        here, outside the XLA-compiled gradients, whose random numbers differ from
        eager ones (tensorflow#121243), and only with an augmentation, so runs without
        it keep their noise stream."""
        if not self.augment:
            return None
        return augment.draw(self.augment, self.noise, tf.shape(real_images)[0],
                            real_images.shape[1])

    def _d_draws(self, real_images):
        """The random inputs of one D update on `real_images`, in this order: (z, alpha,
        (augmentation parameters of the real batch, of the generated batch))."""
        return (self._noise(real_images), self._alpha(real_images),
                (self._augmentation(real_images), self._augmentation(real_images)))

    def _images_and_labels(self, batch):
        """A batch of the iterator -> (images, labels; None when unconditional)."""
        return batch if self.conditional else (batch, None)

    def _alternating_step(self, *real_batches):
        """One D update per batch of `real_batches` (n_critic of them), then G's.

        Returns:
          float32 [len(METRIC_NAMES)]: the step's metrics, D's averaged over its updates.
        """
        d_metrics = []
        for batch in real_batches:
            real_images, labels = self._images_and_labels(batch)
            d_grads, metrics, real_logits = self._d_gradients(
                real_images, labels, *self._d_draws(real_images))
            optimizers.apply_gradients(self.discriminator_optimizer, d_grads, self.discriminator)
            d_metrics.append(metrics)
        g_grads, g_loss = self._g_gradients(real_logits, labels, self._noise(real_images),
                                            self._augmentation(real_images))
        optimizers.apply_gradients(self.generator_optimizer, g_grads, self.generator)
        metrics = {name: tf.reduce_mean([update[name] for update in d_metrics])
                   for name in d_metrics[0]}
        return _stacked({**metrics, "g_loss": g_loss})

    def _simultaneous_step(self, batch):
        """Both updates from one forward pass; returns the metrics as `_alternating_step`."""
        real_images, labels = self._images_and_labels(batch)
        d_grads, g_grads, metrics = self._both_gradients(
            real_images, labels, *self._d_draws(real_images))
        optimizers.apply_gradients(self.discriminator_optimizer, d_grads, self.discriminator)
        optimizers.apply_gradients(self.generator_optimizer, g_grads, self.generator)
        return _stacked(metrics)

    @tf.function
    def train(self, iterator, num_steps):
        """Runs `num_steps` steps on batches from a distributed `iterator`.

        Args:
          iterator: iterator of a distributed dataset of float32 images
            [global_batch_size, 28, 28, 1], or for conditional models of (images, int
            labels [global_batch_size]) (`strategy.experimental_distribute_dataset`, or
            `strategy.distribute_datasets_from_function` with per-replica batches); each
            step reads `n_critic` batches.
            Passed in, not captured, so there is one trace for every iterator
            (tensorflow#29911).
          num_steps: int32 scalar tensor (a tensor, so other counts do not retrace).

        Returns:
          {name: float32 [num_steps]} for each of METRIC_NAMES, in that order: the
          metrics of each step.
        """
        metrics = tf.TensorArray(tf.float32, size=num_steps)
        for step in tf.range(num_steps):
            real_batches = [next(iterator) for _ in range(self.n_critic)]
            per_replica = self.strategy.run(self._replica_step, args=real_batches)
            # Every metric is already divided by the global batch: summing over replicas
            # gives the global mean. One vector, so one all-reduce per step.
            metrics = metrics.write(
                step, self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
            if self.ema_generator is not None:
                ema.update_ema(self.ema_generator, self.generator,
                               self.generator_optimizer.iterations, self.ema_decay)
        stacked = metrics.stack()
        return {name: stacked[:, column] for column, name in enumerate(METRIC_NAMES)}


def _stacked(metrics: dict):
    """{name: float32 scalar} -> float32 [len(METRIC_NAMES)] in METRIC_NAMES order."""
    return tf.stack([metrics[name] for name in METRIC_NAMES])
