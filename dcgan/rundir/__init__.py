"""The run directory: its layout and config.json (`layout.RunDirectory`), what
config.json records (`records`), the checkpoints in it and losses.csv (`loss_log`)."""
