"""`python -m dcgan.data`: prepares Fashion-MNIST for TFDS offline (see `offline`)."""

from dcgan.data.offline import main

main()
