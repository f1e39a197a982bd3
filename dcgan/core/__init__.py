"""The floor everything stands on: the configuration dataclasses and the error classes.
Imports nothing of dcgan."""
