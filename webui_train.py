"""The Train tab now lives in ``svc.webui.train_tab``; this name stays for existing imports."""

from svc.webui.train_tab import TrainTab, describe, loss_figure, train_tab  # noqa: F401
