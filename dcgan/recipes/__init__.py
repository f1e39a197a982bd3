"""What to train: the named presets, the flags that override their fields, the checks
across fields (`validation`), and the run plan that resolves a config where it runs."""
