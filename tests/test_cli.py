"""The command line: conversions, listings, F0 printing, and one-line errors with exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FAST_41, sung_note
from model_fixtures import make_checkpoint

from svc.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    sf.write(folder / "a.wav", sung_note(0.8), 44100, subtype="PCM_24")
    sf.write(folder / "b.flac", np.stack([sung_note(0.6, 32000)] * 2, axis=1), 32000)
    return folder


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_infer_converts_files_and_folders(capsys, song, checkpoints_dir, pretrain_dir, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(
        capsys, "infer", "-m", checkpoints_dir / "tiny41", "-s", "bob", "-t", "3", "--pretrain", pretrain_dir,
        "--device", "cpu", "--format", "flac", "--no-progress", song, "-o", out_dir,
    )
    assert code == 0, err
    written = sorted(out_dir.iterdir())
    assert [p.name for p in written] == ["a_bob_+3key.flac", "b_bob_+3key.flac"]
    audio, sr = sf.read(written[1])
    assert sr == 44100 and len(audio) == int(np.ceil(0.6 * 32000 * 44100 / 32000))
    assert out.split() == [str(p) for p in written]


def test_speaker_ids_with_gaps(capsys, song, pretrain_dir, tmp_path):
    # so-vits-svc accepts any ids in the spk map; "b" is id 5 here, which is not its list index
    make_checkpoint(tmp_path / "gaps", "4.1", speakers=("a", "b"), n_speakers=6, **FAST_41)
    cfg_path = tmp_path / "gaps" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["spk"] = {"a": 0, "b": 5}
    cfg_path.write_text(json.dumps(cfg))
    for speaker in ("b", "5"):
        code, out, err = run_cli(capsys, "infer", "-m", tmp_path / "gaps", "-s", speaker, "--pretrain", pretrain_dir,
                                 "--no-progress", song / "a.wav", "-o", tmp_path / "o")
        assert code == 0, err
        assert Path(out.strip()).name == "a_b_+0key.wav"


def test_infer_progress_bar_goes_to_stderr(capsys, song, checkpoints_dir, pretrain_dir, tmp_path):
    code, out, err = run_cli(capsys, "infer", "-m", checkpoints_dir / "tiny41", "--pretrain", pretrain_dir,
                             "--device", "cpu", song / "a.wav", "-o", tmp_path)
    assert code == 0
    assert "a.wav" in err and "100%" in err


def test_models_lists_speakers_version_encoder(capsys, checkpoints_dir):
    code, out, _ = run_cli(capsys, "models", checkpoints_dir)
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith("tiny40:"))
    assert "so-vits-svc 4.0" in line and "vec256l9" in line and "alice, bob, carol" in line


def test_f0_prints_a_curve_and_plots(capsys, song, tmp_path):
    png = tmp_path / "f0.png"
    code, out, _ = run_cli(capsys, "f0", song / "a.wav", "--f0", "pm", "--plot", png)
    assert code == 0
    rows = out.splitlines()
    assert rows[0] == "time_s,f0_hz"
    values = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert len(values) == int(0.8 * 44100) // 512
    assert abs(np.median(values[values > 0]) - 220) < 10
    assert png.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["infer", "-m", "{ckpt}/tiny41", "-s", "dave", "{song}/a.wav"], "unknown speaker 'dave'"),
        (["infer", "-m", "{ckpt}/missing", "{song}/a.wav"], "missing"),
        (["infer", "-m", "{ckpt}/tiny41", "{song}/nothing.wav"], "does not exist"),
        (["infer", "-m", "{ckpt}/tiny41", "-t", "99", "{song}/a.wav"], "transpose"),
        (["infer", "-m", "{ckpt}/tiny41", "--device", "cuda:7", "{song}/a.wav"], "cuda"),
    ],
)
def test_errors_are_one_line_with_nonzero_exit(capsys, song, checkpoints_dir, pretrain_dir, tmp_path, argv, message):
    argv = [a.format(ckpt=checkpoints_dir, song=song) for a in argv]
    code, _, err = run_cli(capsys, *argv, "--pretrain", pretrain_dir, "-o", tmp_path, "--no-progress")
    assert code == 1
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_a_bad_file_in_a_batch_does_not_stop_the_others(capsys, song, checkpoints_dir, pretrain_dir, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    code, out, err = run_cli(capsys, "infer", "-m", checkpoints_dir / "tiny41", "--pretrain", pretrain_dir,
                             "--no-progress", bad, song / "a.wav", "-o", tmp_path / "o")
    assert code == 1
    assert "bad.wav" in err and "1 of 2 file(s) failed" in err
    assert (tmp_path / "o" / "a_alice_+0key.wav").is_file()


def test_missing_encoder_weights_named_in_error(capsys, song, checkpoints_dir, tmp_path):
    code, _, err = run_cli(capsys, "infer", "-m", checkpoints_dir / "tiny41", "--pretrain", tmp_path,
                           "--no-progress", song / "a.wav", "-o", tmp_path / "o")
    assert code == 1 and "checkpoint_best_legacy_500.pt" in err


def test_module_entry_point_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "svc", "models", str(tmp_path)], capture_output=True, text=True,
                        env=env, cwd=tmp_path)
    assert ok.returncode == 0 and "no models" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "svc", "f0", str(tmp_path / "none.wav")], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error:")
    usage = subprocess.run([sys.executable, "-m", "svc", "infer"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2


def test_ctrl_c_stops_cleanly_and_leaves_no_partial_output(checkpoints_dir, pretrain_dir, tmp_path):
    import signal
    import time

    song = tmp_path / "long.wav"
    sf.write(song, np.concatenate([np.concatenate([sung_note(3.0, seed=i), np.zeros(44100, np.float32)])
                                   for i in range(10)]), 44100)
    out_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    cli = subprocess.Popen([sys.executable, "-m", "svc", "infer", "-m", str(checkpoints_dir / "tiny41"),
                            "--pretrain", str(pretrain_dir), "--device", "cpu", str(song), "-o", str(out_dir)],
                           stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        # Wait until the conversion is under way (the progress bar has moved), then press Ctrl-C.
        seen = ""
        deadline = time.monotonic() + 120
        while "chunk 2/" not in seen:
            assert cli.poll() is None and time.monotonic() < deadline, seen
            seen += cli.stderr.read(1)
        cli.send_signal(signal.SIGINT)
        _, rest = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 130
    last = rest.strip().splitlines()[-1]
    assert last.startswith("error: interrupted while converting") and "0 of 1 file(s) done" in last
    assert "Traceback" not in rest
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
