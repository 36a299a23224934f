"""One-off check: files written by ``svc merge`` / ``svc compress`` load in so-vits-svc 4.1 itself.

Not run by the test suite (the reference is not available in CI).  Usage:

    REF_SOVITS=/path/to/so-vits-svc-4.1 python tests/data/check_model_tools_reference.py

Builds small fixture models, writes a compressed (fp32 and fp16) and a merged file with our tools,
loads each with the reference's ``utils.load_checkpoint`` into its ``SynthesizerTrn`` (as
``inference/infer_tool.py`` does) and compares its ``infer`` output with ours on the same inputs.
Also runs the reference's own ``compress_model.removeOptimizer`` and checks our file has its layout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))
sys.path.insert(0, str(DATA.parent.parent))

from conftest import FAST_41, SPEAKERS  # noqa: E402
from model_fixtures import make_checkpoint, make_inputs, small_config  # noqa: E402

from svc.checkpoint import load_generator  # noqa: E402
from svc.config import ModelConfig  # noqa: E402
from svc.model_tools import compress, merge  # noqa: E402


def reference_infer(utils, models, pth: Path, cfg_path: Path, x: dict) -> torch.Tensor:
    hps = utils.get_hparams_from_file(str(cfg_path), True)
    net = models.SynthesizerTrn(hps.data.filter_length // 2 + 1, hps.train.segment_size // hps.data.hop_length,
                                **hps.model)
    utils.load_checkpoint(str(pth), net, None)
    net = net.float().eval()
    with torch.no_grad():
        audio, _ = net.infer(x["c"], f0=x["f0"], g=x["g"], uv=x["uv"], noice_scale=0.4)
    return audio


def ours_infer(pth: Path, cfg_path: Path, x: dict) -> torch.Tensor:
    model = load_generator(pth, ModelConfig.from_json(cfg_path)).model
    return model.infer(x["c"], x["f0"], x["uv"], x["g"])[0]


def main() -> None:
    for stub in ("faiss", "fairseq"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    sys.path.insert(0, os.environ["REF_SOVITS"])
    import compress_model
    import models
    import utils

    x = make_inputs(small_config("4.1", SPEAKERS, **FAST_41))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = make_checkpoint(root / "a", "4.1", speakers=SPEAKERS, optimizer=True, enc_q=True, **FAST_41)
        b = make_checkpoint(root / "b", "4.1", speakers=SPEAKERS, seed=1, **FAST_41)
        cfg = a / "config.json"
        compress(a / "G_100.pth", root / "c.pth")
        compress(a / "G_100.pth", root / "c_half.pth", half=True)
        merged = merge([a, b], [0.6, 0.4], root / "ab")
        full = json.loads(cfg.read_text())
        full["train"].update(betas=[0.8, 0.99], eps=1e-9)  # the template's; removeOptimizer reads them
        (root / "train_config.json").write_text(json.dumps(full))
        compress_model.removeOptimizer(str(root / "train_config.json"), str(a / "G_100.pth"), False,
                                       str(root / "ref_release.pth"))
        theirs = torch.load(root / "ref_release.pth", weights_only=True)
        mine = torch.load(root / "c.pth", weights_only=True)
        print("layout: keys", sorted(mine) == sorted(theirs), "| model keys", sorted(mine["model"]) ==
              sorted(theirs["model"]), "| optimizer params", len(mine["optimizer"]["param_groups"][0]["params"]),
              "vs", len(theirs["optimizer"]["param_groups"][0]["params"]), "| group keys",
              sorted(mine["optimizer"]["param_groups"][0]) == sorted(theirs["optimizer"]["param_groups"][0]))
        for name, pth, config in (("compressed", root / "c.pth", cfg), ("compressed fp16", root / "c_half.pth", cfg),
                                  ("merged", merged.pth, merged.config)):
            ref = reference_infer(utils, models, pth, config, x)
            ours = ours_infer(pth, config, x)
            print(f"{name:16s} reference loads it: output max|ours - reference| {(ours - ref).abs().max():.3g}, "
                  f"peak {ref.abs().max():.3g}")


if __name__ == "__main__":
    main()
