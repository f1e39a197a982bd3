"""GAN losses: pure functions of D's logits, and a registry of losses by name.

Every loss has the signature `(real_logits, fake_logits) -> (d_loss, g_loss)`:
  real_logits: D's logits on real images, [batch] or [batch, 1], any float dtype.
  fake_logits: D's logits on generated images, same shape.
  Returns per-example float32 losses of shape [batch]; the train step averages them over
  the global batch (`tf.nn.compute_average_loss`), so they are never pre-averaged here.

The training step receives the function and never branches on its name. A new loss is
one function decorated with `@register_loss("name")`.

D's penalties, which take the discriminator and images instead, are in `dcgan.gan.penalties`.
"""

import tensorflow as tf

from dcgan.core.errors import ConfigError

__all__ = [
    "LOSSES",
    "get_loss",
    "hinge",
    "least_squares",
    "minimax",
    "non_saturating",
    "register_loss",
    "relativistic",
    "wasserstein",
]

LOSSES = {}


def register_loss(name):
    """Decorator that adds a loss to `LOSSES` under `name`; names are unique."""

    def register(loss_fn):
        if name in LOSSES:
            raise ValueError(f"Loss {name!r} is already registered.")
        LOSSES[name] = loss_fn
        return loss_fn

    return register


def get_loss(name):
    if name not in LOSSES:
        raise ConfigError(f"Unknown loss {name!r}; known: {sorted(LOSSES)}.")
    return LOSSES[name]


def _flat_float32(logits):
    return tf.reshape(tf.cast(logits, tf.float32), [-1])


def _cross_entropy_d_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), with D = sigmoid(logits), computed stably."""
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


@register_loss("minimax")
def minimax(real_logits, fake_logits):
    """The original minimax GAN loss (Goodfellow et al. 2014, eq. 1).

    d_loss = -log D(x) - log(1 - D(G(z))) = softplus(-real) + softplus(fake)
    g_loss =  log(1 - D(G(z)))            = -softplus(fake)
    with D = sigmoid(logits). G's gradient vanishes when D confidently rejects its
    samples, which is why `non_saturating` is the default.
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return _cross_entropy_d_loss(real_logits, fake_logits), -tf.nn.softplus(fake_logits)


@register_loss("non_saturating")
def non_saturating(real_logits, fake_logits):
    """The non-saturating GAN loss (Goodfellow et al. 2014, section 3).

    d_loss as in `minimax`; g_loss = -log D(G(z)) = softplus(-fake), which keeps strong
    gradients for G early in training.
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return _cross_entropy_d_loss(real_logits, fake_logits), tf.nn.softplus(-fake_logits)


@register_loss("least_squares")
def least_squares(real_logits, fake_logits):
    """The least-squares GAN loss (Mao et al. 2017, eq. 2) with the 0/1 targets a=0, b=1,
    c=1: D pushes its raw output towards 1 on real and 0 on generated images, G pushes it
    towards 1 on its own.

    d_loss = (D(x) - 1)^2 / 2 + D(G(z))^2 / 2
    g_loss = (D(G(z)) - 1)^2 / 2
    with D the raw output (the logits, no sigmoid), in (-inf, inf).
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return (0.5 * tf.square(real_logits - 1.0) + 0.5 * tf.square(fake_logits),
            0.5 * tf.square(fake_logits - 1.0))


@register_loss("hinge")
def hinge(real_logits, fake_logits):
    """The hinge loss (Lim & Ye 2017; Miyato et al. 2018).

    d_loss = max(0, 1 - D(x)) + max(0, 1 + D(G(z)))
    g_loss = -D(G(z))
    with D the raw output, in (-inf, inf). D stops caring about examples beyond the margin.
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits), -fake_logits


@register_loss("wasserstein")
def wasserstein(real_logits, fake_logits):
    """The Wasserstein GAN critic loss (Arjovsky et al. 2017; Gulrajani et al. 2017).

    d_loss = D(G(z)) - D(x)
    g_loss = -D(G(z))
    with D the critic's raw score, in (-inf, inf). The mean of -d_loss estimates the
    Wasserstein-1 distance only while D is 1-Lipschitz: train it with `gradient_penalty`
    (WGAN-GP), otherwise D's scores grow without bound.
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return fake_logits - real_logits, -fake_logits


@register_loss("relativistic")
def relativistic(real_logits, fake_logits):
    """The relativistic pairing loss, RpGAN (Jolicoeur-Martineau 2019; the loss of R3GAN,
    Huang et al. 2025, arXiv 2501.05441, section 2).

    d_loss = softplus(D(G(z)) - D(x))
    g_loss = softplus(D(x) - D(G(z)))
    per pair (x, G(z)): example i of the real batch with example i of the generated one.
    D the raw output, in (-inf, inf). Each generated image is judged against a real one
    rather than against a fixed target, which R3GAN credits (after Sun et al. 2020) with
    fewer dropped modes than the cross-entropy loss. R3GAN trains it with both
    `r1_penalty` and `r2_penalty`: it shows local convergence with both, not with R1 alone.
    """
    real_logits, fake_logits = _flat_float32(real_logits), _flat_float32(fake_logits)
    return tf.nn.softplus(fake_logits - real_logits), tf.nn.softplus(real_logits - fake_logits)
