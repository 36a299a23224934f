"""Command line: ``python -m svc infer | models | f0 | train``.

Every user error ends in one line on stderr ("error: ...") and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from .errors import SvcError
from .naming import output_filename
from .options import ConvertOptions

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
DEFAULT_CHECKPOINTS = Path("checkpoints")
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

log = logging.getLogger("svc")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except SvcError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory; try --clip 20 or a shorter input", file=sys.stderr)
        return EXIT_ERROR


def _build_parser() -> argparse.ArgumentParser:
    from .f0 import F0_PREDICTORS

    parser = argparse.ArgumentParser(prog="python -m svc", description="so-vits-svc compatible voice conversion")
    parser.add_argument("-v", "--verbose", action="store_true", help="print what is being done")
    sub = parser.add_subparsers(dest="command", required=True)

    infer = sub.add_parser("infer", help="convert audio files to a model's voice")
    infer.add_argument("inputs", nargs="+", type=Path, help="audio files or folders of them")
    infer.add_argument("-m", "--model", type=Path,
                       help="checkpoints/<name> folder, or a .pth file (not needed with --only-diffusion)")
    infer.add_argument("-c", "--config", type=Path, help="config.json (default: beside the .pth)")
    infer.add_argument("-o", "--output", type=Path, default=Path("results"), help="output folder (default: results)")
    infer.add_argument("--format", choices=("wav", "flac"), default="wav", help="output file format")
    infer.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    infer.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="precision: fp32 (default); bf16 (CPUs with AVX512-BF16/AMX, GPUs) or fp16 (GPUs) "
                            "for the synthesis and the speech encoder's transformer layers")
    infer.add_argument("--pretrain", type=Path, help="folder of encoder / F0 / vocoder weights (default: pretrain/)")
    infer.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    infer.add_argument("--diffusion", type=Path,
                       help="diffusion model_N.pt (default: checkpoints/<name>/diffusion/ when present)")
    infer.add_argument("--diffusion-config", type=Path, help="the diffusion model's config.yaml (default: beside it)")
    _add_option_flags(infer, sorted(F0_PREDICTORS))
    infer.set_defaults(func=_cmd_infer)

    models = sub.add_parser("models", help="list the models under a checkpoints folder")
    models.add_argument("checkpoints", nargs="?", type=Path, default=DEFAULT_CHECKPOINTS)
    models.set_defaults(func=_cmd_models)

    f0 = sub.add_parser("f0", help="print (and optionally plot) the F0 curve of an audio file")
    f0.add_argument("input", type=Path)
    f0.add_argument("--f0", dest="f0_method", default="pm", choices=sorted(F0_PREDICTORS))
    f0.add_argument("--sr", type=int, default=44100, help="analysis sample rate (default 44100)")
    f0.add_argument("--hop", type=int, default=512, help="frame hop in samples (default 512)")
    f0.add_argument("--threshold", type=float, default=0.05, help="voicing threshold (crepe, rmvpe, fcpe)")
    f0.add_argument("--device", default="cpu")
    f0.add_argument("--pretrain", type=Path)
    f0.add_argument("--plot", type=Path, help="save a PNG of the curve here")
    f0.set_defaults(func=_cmd_f0)
    _add_model_tool_commands(sub)

    from .train.cli import add_train_commands

    add_train_commands(sub.add_parser("train", help="prepare a dataset and train a voice model"))
    return parser


def _add_model_tool_commands(sub: argparse._SubParsersAction) -> None:
    from .model_tools import MERGE_MODES

    merge = sub.add_parser("merge", help="weighted average of compatible models (so-vits-svc's model mix)")
    merge.add_argument("models", nargs="+", type=Path, help="model folders or .pth files (two or more)")
    merge.add_argument("--weights", required=True, help="one weight per model, e.g. 0.6,0.4")
    merge.add_argument("--mode", choices=MERGE_MODES, default="average",
                       help="average: weights / their sum (default); linear: as given; softmax: the 4.1 web UI's "
                            "convex mode")
    merge.add_argument("-o", "--output", required=True, type=Path,
                       help="checkpoints/NAME folder (gets NAME.pth + config.json) or a .pth path")
    merge.set_defaults(func=_cmd_merge)

    compress = sub.add_parser("compress", help="drop the optimizer state and training-only weights of a G_*.pth")
    compress.add_argument("input", type=Path, help="G_*.pth")
    compress.add_argument("-o", "--output", required=True, type=Path, help="the .pth to write")
    compress.add_argument("--half", action="store_true", help="store fp16 tensors (half the size)")
    compress.set_defaults(func=_cmd_compress)


def _cmd_merge(args: argparse.Namespace) -> int:
    from .model_tools import describe, merge, parse_weights

    print(describe(merge(args.models, parse_weights(args.weights), args.output, args.mode)))
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from .model_tools import compress, describe

    if args.output.resolve() == args.input.resolve():
        raise SvcError(f"output '{args.output}' would overwrite the input; choose another -o path")
    print(describe(compress(args.input, args.output, args.half)))
    return 0


# Short flags for the most used settings (so-vits-svc's inference_main.py spells them the same).
_SHORT_FLAGS = {"speaker": ["-s"], "transpose": ["-t"], "f0_method": ["--f0"], "clip_seconds": ["--clip"],
                "crossfade_seconds": ["--crossfade"], "slice_db": ["--slice-db"]}


def _add_option_flags(parser: argparse.ArgumentParser, f0_choices: list[str]) -> None:
    """One flag per ``ConvertOptions`` field, so the settings are defined in one place."""
    group = parser.add_argument_group("conversion settings")
    for f in fields(ConvertOptions):
        flags = _SHORT_FLAGS.get(f.name, []) + [f"--{f.name.replace('_', '-')}"]
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not MISSING else None
        if f.type in ("bool", bool):
            group.add_argument(*flags, dest=f.name, action="store_true", help=help_text)
        elif f.name == "f0_method":
            group.add_argument(*flags, dest=f.name, default=default, choices=f0_choices, help=help_text)
        elif f.metadata.get("path"):
            group.add_argument(*flags, dest=f.name, default=None, metavar="FILE", help=help_text)
        elif f.name == "speaker":
            group.add_argument(*flags, dest=f.name, default=None, help=help_text)
        elif f.name == "noise_scale":  # unset: the model's own (session.default_noise_scale)
            group.add_argument(*flags, dest=f.name, type=float, default=None,
                               help=f"{help_text} (default {default}; 1 for so-vits-svc 3.0 models, as 3.0 itself)")
        elif f.name == "diffusion_method":
            from .diffusion.samplers import SAMPLERS

            group.add_argument(*flags, dest=f.name, default=None, choices=list(SAMPLERS), help=help_text)
        else:
            kind = int if f.type in ("int", int) else float
            group.add_argument(*flags, dest=f.name, type=kind, default=default,
                               help=f"{help_text} (default {default})")


def _options_from_args(args: argparse.Namespace) -> ConvertOptions:
    """The settings given on the command line; those left unset (``None``) keep their defaults."""
    values = {f.name: getattr(args, f.name) for f in fields(ConvertOptions)}
    if values["noise_scale"] is None:
        del values["noise_scale"]
    return ConvertOptions(**values)


def collect_inputs(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into the audio files they hold (sorted); missing paths are an error."""
    from .errors import AudioError

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not files:
                raise AudioError(f"folder '{path}' holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise AudioError(f"input '{path}' does not exist")
    return found


def _cmd_infer(args: argparse.Namespace) -> int:
    from .session import VitsSvc

    options = _options_from_args(args)
    inputs = collect_inputs(args.inputs)
    session = VitsSvc(device=args.device, precision=args.precision,
                      **({"pretrain_dir": args.pretrain} if args.pretrain else {}))
    if args.model is not None:
        session.load(args.model, args.config)
    elif not options.only_diffusion:
        raise SvcError("give the voice model with -m/--model (only --only-diffusion works without one)")
    if args.diffusion is not None:
        session.load_diffusion(args.diffusion, args.diffusion_config)
    if args.noise_scale is None and args.model is not None:
        options = options.with_(noise_scale=session.default_noise_scale)
    for note in session.load_notes:
        print(f"note: {note}", file=sys.stderr)
    speaker_name = session.output_speaker_name(options)
    args.output.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in inputs:
        out_path = args.output / output_filename(path.stem, speaker_name, options.transpose, args.format)
        if out_path.resolve() == path.resolve():
            raise SvcError(f"output '{out_path}' would overwrite the input; choose another --output folder")
        try:
            with _progress_bar(path.name, disabled=args.no_progress) as report:
                session.convert_file(path, out_path, options, progress=report, keep_audio=False)
        except KeyboardInterrupt:
            # Ctrl-C: the file being converted is not written (outputs are renamed into place only
            # when complete); say what was done and stop.
            done = inputs.index(path) - failures
            print(f"error: interrupted while converting '{path}'; nothing was written for it "
                  f"({done} of {len(inputs)} file(s) done)", file=sys.stderr)
            return EXIT_INTERRUPTED
        except SvcError as e:
            failures += 1
            print(f"error: {path}: {e}", file=sys.stderr)
            continue
        print(out_path)
    if failures:
        print(f"error: {failures} of {len(inputs)} file(s) failed", file=sys.stderr)
        return EXIT_ERROR
    return 0


class _progress_bar:
    """A tqdm bar driven by the pipeline's (fraction, text) callback."""

    def __init__(self, name: str, disabled: bool) -> None:
        self.name, self.disabled, self.bar = name, disabled, None

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=1000, desc=self.name, disable=self.disabled, file=sys.stderr,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        return self

    def __call__(self, fraction: float, text: str) -> None:
        self.bar.n = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        self.bar.set_postfix_str(text, refresh=True)

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _cmd_models(args: argparse.Namespace) -> int:
    from .session import describe_model_dir, list_model_dirs

    dirs = list_model_dirs(args.checkpoints)
    if not dirs:
        print(f"no models under '{args.checkpoints}' (each model is a folder with one .pth and its config.json)")
        return 0
    for path in dirs:
        try:
            info = describe_model_dir(path)
        except SvcError as e:
            print(f"{path.name}: unusable: {e}")
            continue
        print(info)
    return 0


def _cmd_f0(args: argparse.Namespace) -> int:
    from .analysis import extract_f0_curve
    from .audio import read_audio
    from .plots import plot_f0

    wav, sr = read_audio(args.input, mono=True)
    curve = extract_f0_curve(wav, sr, args.f0_method, sampling_rate=args.sr, hop_length=args.hop,
                             device=args.device, threshold=args.threshold, pretrain_dir=args.pretrain)
    print("time_s,f0_hz")  # unvoiced frames print as 0
    for t, value in zip(curve.times, curve.f0, strict=True):
        print(f"{t:.4f},{value:.2f}")
    if args.plot:
        plot_f0([curve], title=f"F0 of {args.input.name}").savefig(args.plot)
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0
