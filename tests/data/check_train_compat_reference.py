"""Check that training checkpoints move both ways between this project and so-vits-svc 4.1.

Not run by the test suite (CI has no reference code).  Usage:

    REF_SOVITS=/path/to/so-vits-svc-4.1 python tests/data/check_train_compat_reference.py

1. Trains one step here (full-size discriminator) and loads the written G/D pair with the
   reference's ``utils.load_checkpoint`` into its ``SynthesizerTrn`` / ``MultiPeriodDiscriminator``
   with their AdamW optimizers: no missing keys, the optimizer states land on the same
   parameters, and the reference ``infer`` gives the same audio as this project's inference.
2. Saves a reference model + optimizer with the reference's ``utils.save_checkpoint`` and
   resumes it here: no missing keys, same weights, every AdamW state on the same parameter.
"""

from __future__ import annotations

import importlib.machinery
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

from model_fixtures import make_inputs, small_config  # noqa: E402

from svc.checkpoint import load_generator  # noqa: E402
from svc.config import ModelConfig  # noqa: E402
from svc.train.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from svc.train.model import MultiPeriodDiscriminator, TrainGenerator  # noqa: E402


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo inspects specs
    return sys.modules.setdefault(name, module)


def import_reference(path: str):
    for name in ("faiss", "fairseq", "sklearn", "sklearn.cluster"):
        _stub(name)
    sys.modules["sklearn.cluster"].MiniBatchKMeans = object
    sys.path.insert(0, path)
    import models
    import utils

    return models, utils


def one_step(net: torch.nn.Module, optim: torch.optim.Optimizer) -> None:
    """An optimizer step with made-up gradients, so that every parameter has an AdamW state."""
    gen = torch.Generator().manual_seed(1)
    for p in net.parameters():
        p.grad = 1e-3 * torch.randn(p.shape, generator=gen)
    optim.step()


def states_by_name(net: torch.nn.Module, optim: torch.optim.Optimizer, rename=lambda k: k) -> dict:
    names = {id(p): rename(n) for n, p in net.named_parameters()}
    return {names[id(p)]: s["exp_avg"] for p, s in optim.state.items()}


def main() -> None:
    ref_models, ref_utils = import_reference(os.environ["REF_SOVITS"])
    from svc.train.weight_norm import to_reference_keys

    def ref_name(n: str) -> str:
        return next(iter(to_reference_keys({n: None})))

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("4.1", "tiny", "flow_share", "snake"):
            cfg = small_config(variant)
            model_cfg = ModelConfig.from_dict(cfg)
            seg = cfg["train"]["segment_size"] // cfg["data"]["hop_length"]
            # --- ours -> reference
            torch.manual_seed(0)
            net_g = TrainGenerator(model_cfg.model, 1025, seg)
            net_d = MultiPeriodDiscriminator()
            opt_g, opt_d = torch.optim.AdamW(net_g.parameters(), 1e-4), torch.optim.AdamW(net_d.parameters(), 1e-4)
            one_step(net_g, opt_g)
            one_step(net_d, opt_d)
            folder = Path(tmp) / variant
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(cfg))
            save_checkpoint(net_g, opt_g, 1e-4, 3, folder / "G_5.pth")
            save_checkpoint(net_d, opt_d, 1e-4, 3, folder / "D_5.pth")
            ref_g = ref_models.SynthesizerTrn(1025, seg, **cfg["model"])
            ref_d = ref_models.MultiPeriodDiscriminator(False)
            ref_opt_g = torch.optim.AdamW(ref_g.parameters(), 1e-4)
            ref_opt_d = torch.optim.AdamW(ref_d.parameters(), 1e-4)
            ref_utils.load_checkpoint(str(folder / "G_5.pth"), ref_g, ref_opt_g)
            ref_utils.load_checkpoint(str(folder / "D_5.pth"), ref_d, ref_opt_d)
            ours = states_by_name(net_g, opt_g, ref_name)
            theirs = states_by_name(ref_g, ref_opt_g)
            g_opt_ok = set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
            ours_d, theirs_d = states_by_name(net_d, opt_d, ref_name), states_by_name(ref_d, ref_opt_d)
            d_opt_ok = all(torch.equal(ours_d[k], theirs_d[k]) for k in ours_d) and set(ours_d) == set(theirs_d)
            ref_g.eval()
            x = make_inputs(cfg)
            with torch.no_grad():
                ref_audio, _ = ref_g.infer(x["c"], f0=x["f0"].clone(), uv=x["uv"], g=x["g"], noice_scale=0.4,
                                           seed=52468, vol=x["vol"] if cfg["model"].get("vol_embedding") else None)
            loaded = load_generator(folder / "G_5.pth", model_cfg).model
            our_audio, _ = loaded.infer(x["c"], x["f0"].clone(), x["uv"], x["g"], noise_scale=0.4, seed=52468,
                                        vol=x["vol"] if cfg["model"].get("vol_embedding") else None)
            audio_diff = float((ref_audio - our_audio).abs().max())
            # --- reference -> ours
            torch.manual_seed(1)
            ref_g2 = ref_models.SynthesizerTrn(1025, seg, **cfg["model"])
            ref_opt2 = torch.optim.AdamW(ref_g2.parameters(), 1e-4)
            one_step(ref_g2, ref_opt2)
            ref_utils.save_checkpoint(ref_g2, ref_opt2, 1e-4, 9, str(folder / "G_900.pth"))
            mine = TrainGenerator(model_cfg.model, 1025, seg)
            mine_opt = torch.optim.AdamW(mine.parameters(), 1e-4)
            res = load_checkpoint(folder / "G_900.pth", mine, mine_opt)
            ref_state = ref_g2.state_dict()
            weights_ok = all(torch.equal(v, ref_state[k]) for k, v in to_reference_keys(mine.state_dict()).items())
            a, b = states_by_name(mine, mine_opt, ref_name), states_by_name(ref_g2, ref_opt2)
            back_opt_ok = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
            results.append((variant, g_opt_ok, d_opt_ok, audio_diff, res.missing == [] and res.optimizer_restored,
                            weights_ok, back_opt_ok))
    for r in results:
        print(f"{r[0]:>10}: ours->ref G optimizer {r[1]}, D optimizer {r[2]}, infer max diff {r[3]:.2e}; "
              f"ref->ours loaded {r[4]}, weights equal {r[5]}, optimizer {r[6]}")


if __name__ == "__main__":
    main()
