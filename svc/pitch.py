"""The pitch range of so-vits-svc: where F0 predictors search and what the coarse-pitch embedding spans."""

F0_MIN = 50.0  # Hz
F0_MAX = 1100.0  # Hz
