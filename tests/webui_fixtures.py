"""Fixture builders for the web UI tests: a pretrain folder a real conversion can run with."""

from pathlib import Path

from encoder_fixtures import contentvec_model_cfg, fairseq_hubert_state, save_fairseq_checkpoint

CONTENTVEC_FILE = "checkpoint_best_legacy_500.pt"


def make_contentvec768_file(path: str | Path, seed: int = 0) -> Path:
    """A random ContentVec file whose 12th layer gives 768-dim features, as vec768l12 models expect.

    The small fixture encoder gives 64-dim features, which a 768-dim model rightly refuses; this one
    keeps the width but shrinks everything else (feed-forward, positional conv), about 60 MB.
    """
    cfg = contentvec_model_cfg(small=True, layers=12)
    cfg.update(encoder_embed_dim=768, encoder_ffn_embed_dim=32, encoder_attention_heads=4, conv_pos=8,
               conv_pos_groups=16)
    state = fairseq_hubert_state(cfg, seed)
    save_fairseq_checkpoint(path, cfg, {k: v.half() for k, v in state.items()})
    return Path(path)


def make_pretrain_dir(folder: str | Path) -> Path:
    """``folder`` holding the ContentVec file (the only weight file a pm/harvest conversion needs)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    make_contentvec768_file(folder / CONTENTVEC_FILE)
    return folder
