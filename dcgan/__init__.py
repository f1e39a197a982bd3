"""dcgan: a low-level TensorFlow 2 research library for GANs on Fashion-MNIST."""
