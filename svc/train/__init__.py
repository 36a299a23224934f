"""Training so-vits-svc 4.1 voices: dataset preparation, the training loop and its checkpoints.

``python -m svc train prepare DATASET -o RUN`` caches features per clip and writes a 4.1
``config.json``; ``python -m svc train run RUN`` trains and writes ``G_<step>.pth`` /
``D_<step>.pth`` in so-vits-svc's own checkpoint format.
"""
