"""``python -m svc train prepare | run``: argument parsing and printing only."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .config import TEMPLATES


def add_train_commands(train: argparse.ArgumentParser) -> None:
    """Add the ``prepare`` and ``run`` subcommands to the ``train`` parser."""
    from ..encoders.registry import ENCODERS
    from ..f0 import F0_PREDICTORS

    sub = train.add_subparsers(dest="train_command", required=True)
    prep = sub.add_parser("prepare", help="turn DATASET/<speaker>/*.wav into a run folder with cached features")
    prep.add_argument("dataset", type=Path, help="folder with one subfolder of recordings per speaker")
    prep.add_argument("-o", "--output", type=Path, required=True, help="run folder to create or complete")
    prep.add_argument("--template", choices=TEMPLATES, default="default",
                      help="model size: so-vits-svc 4.1's default or tiny template (default: default)")
    prep.add_argument("--speech-encoder", default="vec768l12", choices=list(ENCODERS),
                      help="content encoder (default vec768l12)")
    prep.add_argument("--f0", dest="f0_method", default="rmvpe", choices=sorted(F0_PREDICTORS),
                      help="F0 predictor for the training features (default rmvpe)")
    prep.add_argument("--pretrain", type=Path, help="folder of encoder / F0 weights (default: pretrain/)")
    prep.add_argument("--vol-embedding", action="store_true",
                      help="train with volume embedding and volume augmentation (so-vits-svc's --vol_aug)")
    prep.add_argument("--no-normalize", action="store_true", help="keep the recordings' levels (no peak normalisation)")
    prep.add_argument("--max-clip-seconds", type=float, default=15.0, help="longest clip after slicing (default 15)")
    prep.add_argument("--device", default="cpu", help="device for the encoder and F0 networks (default cpu)")
    prep.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    prep.set_defaults(func=_cmd_prepare)

    run = sub.add_parser("run", help="train (or resume training) the model of a run folder")
    run.add_argument("run_dir", type=Path)
    run.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in total")
    run.add_argument("--eval-interval", type=int, help="steps between validation + checkpoints (config: 800)")
    run.add_argument("--batch-size", type=int, help="clips per step and process (config: 6)")
    run.add_argument("--log-interval", type=int, help="steps between loss records (config: 200)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (torchrun: one GPU per process)")
    run.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                     help="mixed precision: bf16 or fp16 autocast on GPUs (default fp32)")
    run.add_argument("--workers", type=int, help="data loader processes (default: up to 4)")
    run.add_argument("--pretrain", type=Path, help="folder with base models G_0.pth / D_0.pth to fine-tune from")
    run.add_argument("--val-samples", type=int, default=4, help="validation clips rendered per evaluation (default 4)")
    run.add_argument("--discriminator-divisor", type=int, default=1,
                     help="divide the discriminator's channels (quick trials and tests; such D files do not "
                          "fit so-vits-svc's; default 1 = the 4.1 discriminator)")
    run.set_defaults(func=_cmd_run)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import PrepareOptions, prepare

    options = PrepareOptions(template=args.template, speech_encoder=args.speech_encoder, f0_method=args.f0_method,
                             pretrain_dir=args.pretrain, device=args.device, normalize=not args.no_normalize,
                             vol_embedding=args.vol_embedding, max_clip_seconds=args.max_clip_seconds)
    with _Bar(disabled=args.no_progress) as bar:
        report = prepare(args.dataset, args.output, options, progress=bar)
    for what, why in report.skipped:
        print(f"skipped {what}: {why}", file=sys.stderr)
    print(f"{args.output}: {len(report.train)} training and {len(report.val)} validation clips, "
          f"speakers: {', '.join(report.speakers)}")
    if not report.val:
        print("note: no validation clips (a speaker needs at least 2 clips to give one)", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import torch

    from .loop import RunOptions, Trainer

    # A freshly initialised GAN produces denormal floats (tiny activations and gradients), which
    # make CPU training several times slower; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)

    options = RunOptions(max_steps=args.max_steps, eval_interval=args.eval_interval, batch_size=args.batch_size,
                         log_interval=args.log_interval, device=args.device, precision=args.precision,
                         workers=args.workers, pretrain_dir=args.pretrain, val_samples=args.val_samples,
                         discriminator_divisor=args.discriminator_divisor)

    def show(record: dict) -> None:
        if record.get("kind") == "losses":
            print(f"step {record['step']:>7d}  mel {record['loss_mel']:.3f}  kl {record['loss_kl']:.3f}  "
                  f"fm {record['loss_fm']:.3f}  g {record['loss_g']:.3f}  d {record['loss_d']:.3f}  "
                  f"{record.get('steps_per_s', 0):.2f} steps/s", flush=True)

    trainer = Trainer(args.run_dir, options, listener=show)
    if trainer.rank == 0 and trainer.resumed_from is not None:
        print(f"resuming from {trainer.resumed_from} at step {trainer.step}", file=sys.stderr)

    def graceful_stop(signum, frame) -> None:
        # The first Ctrl-C (or the web UI's SIGINT) ends the run after the current step, with a
        # checkpoint; a second one aborts at once (train run still saves what it can).
        if trainer.stop.is_set():
            raise KeyboardInterrupt
        trainer.stop.set()
        print("stopping after this step (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, graceful_stop)
    result = trainer.run()
    if trainer.rank == 0:
        for path in result.checkpoints:
            print(path)
        if trainer.stop.is_set():
            print(f"stopped at step {result.step}", file=sys.stderr)
    return 0


class _Bar:
    """A tqdm bar fed by ``prepare``'s (done, total, text) callback."""

    def __init__(self, disabled: bool) -> None:
        self.disabled, self.bar = disabled, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int, text: str) -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, disable=self.disabled, file=sys.stderr, unit="file")
        self.bar.n = done
        self.bar.set_description_str(text[:40], refresh=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
