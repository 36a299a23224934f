"""Training: prepare a synthetic two-speaker dataset, train a small model, checkpoint, resume, convert.

The model is smaller than so-vits-svc's tiny template (a few hundred thousand parameters) and
the discriminator's channels are divided by 16, so 30 steps take seconds on a CPU; the
checkpoint layout of the full-size discriminator is checked separately.  Training runs through
the command line in a child process with one OpenMP thread: a training step is hundreds of tiny
operations, which two threads on a busy machine make 10-30x slower (barrier waits).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from model_fixtures import enc_q_shapes
from train_fixtures import SR, adamw_state, reference_discriminator_shapes, voice, write_dataset

from svc.cli import main
from svc.config import ModelConfig
from svc.errors import DatasetError
from svc.models import SynthesizerTrn, checkpoint_shapes
from svc.train.checkpoints import latest_pair, load_checkpoint
from svc.train.config import RunConfig, build_config
from svc.train.dataset import ClipDataset, feature_paths
from svc.train.loop import RunOptions, Trainer
from svc.train.model import MultiPeriodDiscriminator, TrainGenerator
from svc.train.prepare import PrepareOptions, prepare
from svc.train.report import read_losses
from svc.train.weight_norm import to_reference_keys

ROOT = Path(__file__).resolve().parent.parent
# About a minute on an idle 2-core machine; the limit leaves room for a heavily shared one.
pytestmark = pytest.mark.timeout(1800)

SMALL_MODEL = {"inter_channels": 16, "hidden_channels": 32, "filter_channels": 64, "n_layers": 2,
               "upsample_initial_channel": 64, "gin_channels": 32}
SMALL_TRAIN = {"segment_size": 2560, "batch_size": 2, "learning_rate": 1e-3, "log_interval": 1}
STEPS = 30
FAST = {"device": "cpu", "workers": 0, "discriminator_divisor": 16, "val_samples": 1}
FAST_FLAGS = ["--device", "cpu", "--workers", "0", "--discriminator-divisor", "16", "--val-samples", "1"]


def train_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "svc", "train", "run", *args, *FAST_FLAGS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)


def reference_generator_shapes(cfg: dict) -> dict[str, torch.Size]:
    """The reference's G keys and shapes: the inference layout (weight_g/weight_v) plus enc_q."""
    with torch.device("meta"):
        shapes = checkpoint_shapes(SynthesizerTrn(ModelConfig.from_dict(cfg).model))
    return {**shapes, **enc_q_shapes(cfg)}


def make_small(run_dir) -> None:
    """Shrink a prepared run's model and segment so that training steps are cheap."""
    path = run_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["model"].update(SMALL_MODEL)
    cfg["train"].update(SMALL_TRAIN)
    path.write_text(json.dumps(cfg, indent=2))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, pretrain_dir):
    root = tmp_path_factory.mktemp("train")
    dataset = write_dataset(root / "dataset")
    options = PrepareOptions(template="tiny", speech_encoder="vec256l9", f0_method="pm", pretrain_dir=pretrain_dir)
    report = prepare(dataset, root / "run", options)
    config = json.loads((root / "run" / "config.json").read_text())
    return {"root": root, "dataset": dataset, "run": root / "run", "report": report, "config": config,
            "options": options}


@pytest.fixture(scope="module")
def trained(prepared):
    run = prepared["run"]
    make_small(run)
    proc = train_cli(str(run), "--max-steps", str(STEPS), "--eval-interval", str(STEPS // 2))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {**prepared, "stdout": proc.stdout}


def test_prepare_writes_a_41_config_features_and_filelists(prepared):
    cfg, report, run = prepared["config"], prepared["report"], prepared["run"]
    assert report.speakers == ["alto", "bass"] and report.skipped == []
    assert cfg["spk"] == {"alto": 0, "bass": 1} and cfg["model"]["n_speakers"] == 2
    # The tiny template with a 256-dim encoder, as preprocess_flist_config.py --tiny writes it.
    assert cfg["model"]["speech_encoder"] == "vec256l9"
    assert cfg["model"]["ssl_dim"] == cfg["model"]["gin_channels"] == 256
    assert cfg["model"]["filter_channels"] == 512 and cfg["model"]["upsample_initial_channel"] == 400
    assert cfg["model"]["use_depthwise_conv"] and cfg["model"]["flow_share_parameter"]
    assert cfg["train"]["segment_size"] == 10240 and cfg["train"]["c_mel"] == 45
    assert len(report.train) == 4 and len(report.val) == 2  # one validation clip per speaker
    listed = (run / "filelists" / "train.txt").read_text().split()
    assert sorted(listed) == sorted(report.train)
    hop = cfg["data"]["hop_length"]
    for rel in report.train + report.val:
        wav, sr = sf.read(run / rel)
        files = feature_paths(run / rel)
        f0, uv = np.load(files["f0"])
        spec = torch.load(files["spec"])
        units = torch.load(files["soft"])
        assert sr == SR and len(f0) == len(wav) // hop == spec.shape[1]
        assert spec.shape[0] == 1025 and units.shape[:2] == (1, 256)
        assert set(np.unique(uv)) <= {0.0, 1.0} and uv.mean() > 0.8  # the tones are voiced
        assert len(np.load(files["vol"])) == len(f0)
        assert abs(float(np.abs(wav).max()) - 0.98) < 1e-3  # peak-normalised


def test_prepare_again_skips_finished_work(prepared):
    report = prepare(prepared["dataset"], prepared["run"], prepared["options"])
    assert report.features_computed == 0 and len(report.train) == 4


def test_prepare_reports_and_skips_bad_files(tmp_path, pretrain_dir, capsys):
    dataset = write_dataset(tmp_path / "data", clips_per_speaker=2, seconds=0.6)
    bad = dataset / "alto"
    sf.write(bad / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(bad / "short.wav", voice(0.15, 220, (800.0,), 1), SR)
    clipped = np.clip(4 * voice(0.6, 220, (800.0,), 2), -1, 1)
    sf.write(bad / "clipped.wav", clipped, SR)
    (bad / "broken.wav").write_bytes(b"RIFF not really a wave file")
    code = main(["train", "prepare", str(dataset), "-o", str(tmp_path / "run"), "--template", "tiny",
                 "--speech-encoder", "vec256l9", "--f0", "pm", "--pretrain", str(pretrain_dir), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    reasons = {line.split(":")[0]: line for line in err.splitlines() if line.startswith("skipped")}
    assert "silent" in reasons["skipped alto/silent.wav"]
    assert "too short" in reasons["skipped alto/short.wav clip 0"]
    assert "clipped" in reasons["skipped alto/clipped.wav"]
    assert "unreadable" in reasons["skipped alto/broken.wav"]
    assert "2 training and 2 validation clips" in out


def test_prepare_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(DatasetError, match="does not exist"):
        prepare(tmp_path / "missing", tmp_path / "run")
    (tmp_path / "empty" / "alto").mkdir(parents=True)
    code = main(["train", "prepare", str(tmp_path / "empty"), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no speaker folders with audio" in err
    code = main(["train", "run", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 1 and "train prepare" in err


def test_training_lowers_the_mel_loss_and_writes_checkpoints(trained):
    run = trained["run"]
    history = read_losses(run / "losses.csv")
    assert [r["step"] for r in history] == list(range(1, STEPS + 1))
    for record in history:
        assert all(math.isfinite(record[k]) for k in ("loss_d", "loss_g", "loss_fm", "loss_mel", "loss_kl",
                                                      "loss_lf0"))
    mel = [r["loss_mel"] for r in history]
    assert np.mean(mel[-3:]) < mel[0] - 1.0, mel
    assert latest_pair(run) == STEPS
    assert sorted(p.name for p in run.glob("[GD]_*.pth")) == ["D_15.pth", "D_30.pth", "G_15.pth", "G_30.pth"]
    assert f"{run / 'G_30.pth'}" in trained["stdout"]
    assert (run / "losses.png").stat().st_size > 1000
    assert any(run.glob("events.out.tfevents.*")) and any((run / "eval").glob("events.out.tfevents.*"))
    assert list((run / "eval").glob("*_generated.wav"))


def test_generator_checkpoint_has_the_41_layout(trained):
    run = trained["run"]
    saved = torch.load(run / f"G_{STEPS}.pth", weights_only=True)
    assert set(saved) == {"model", "iteration", "optimizer", "learning_rate"}
    assert saved["learning_rate"] == SMALL_TRAIN["learning_rate"] and saved["iteration"] >= 1
    cfg = json.loads((run / "config.json").read_text())
    expected = reference_generator_shapes(cfg)
    state = saved["model"]
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k] and state[k].dtype == torch.float32 for k in expected)
    # The shared flow network is one tensor under both names, as in so-vits-svc.
    assert state["flow.wn.in_layers.0.depth_conv.weight_v"].data_ptr() == \
        state["flow.flows.0.enc.in_layers.0.depth_conv.weight_v"].data_ptr()
    optim = saved["optimizer"]
    n_params = len({t.data_ptr() for t in state.values()})
    assert len(optim["param_groups"][0]["params"]) == n_params == len(optim["state"])


def test_discriminator_has_the_41_layout():
    with torch.device("meta"):
        net_d = MultiPeriodDiscriminator()
    state = to_reference_keys(net_d.state_dict())
    expected = reference_discriminator_shapes()
    assert list(state) == list(expected)
    assert all(tuple(state[k].shape) == expected[k] for k in expected)


def test_resume_continues_at_the_saved_step_with_the_saved_optimizer(trained):
    run = trained["run"]
    trainer = Trainer(run, RunOptions(max_steps=STEPS + 2, **FAST))
    assert trainer.step == STEPS and trainer.resumed_from == run / f"G_{STEPS}.pth"
    saved = torch.load(run / f"G_{STEPS}.pth", weights_only=True)["optimizer"]["state"]
    live = trainer.optim_g.state_dict()["state"]
    assert set(live) == set(saved)
    for i in (0, len(saved) // 2, len(saved) - 1):
        assert torch.equal(live[i]["exp_avg"], saved[i]["exp_avg"]) and float(live[i]["step"]) == STEPS
    # Training on from here is the jobs test below (a resumed child process that is then stopped).


def test_reference_layout_checkpoints_resume_here(tmp_path, trained):
    """G_N/D_N files as so-vits-svc writes them (reference key order, AdamW state by that order)."""
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run, ignore=shutil.ignore_patterns("[GD]_*.pth", "events*", "eval"))
    cfg = RunConfig.from_json(run / "config.json")
    t = cfg.train
    order = list(to_reference_keys(TrainGenerator(cfg.model.model, t.spec_channels, t.segment_frames).state_dict()))
    shapes = reference_generator_shapes(cfg.raw)
    gen = torch.Generator().manual_seed(3)
    g_state = {k: 0.1 * torch.randn(shapes[k], generator=gen).abs() for k in order}  # in so-vits-svc's order
    for key in [k for k in g_state if k.startswith("flow.flows.") and ".enc." in k]:  # one shared network
        g_state[key] = g_state["flow.wn." + key.split(".enc.", 1)[1]]
    unique = list({v.data_ptr(): v for v in g_state.values()}.values())
    torch.save({"model": g_state, "iteration": 7, "learning_rate": 1e-4,
                "optimizer": adamw_state([tuple(v.shape) for v in unique], 400)}, run / "G_400.pth")
    d_shapes = reference_discriminator_shapes(divisor=16)
    d_state = {k: 0.01 * torch.randn(s, generator=gen) for k, s in d_shapes.items()}
    torch.save({"model": d_state, "iteration": 7, "learning_rate": 1e-4,
                "optimizer": adamw_state(list(d_shapes.values()), 400, seed=1)}, run / "D_400.pth")
    net_g = TrainGenerator(cfg.model.model, t.spec_channels, t.segment_frames)
    optim = torch.optim.AdamW(net_g.parameters(), 1e-4)
    loaded = load_checkpoint(run / "G_400.pth", net_g, optim)
    assert loaded.missing == [] and loaded.optimizer_restored and loaded.iteration == 7
    weight = net_g.dec.conv_post.weight  # g * v / ||v|| from the file's weight_g / weight_v
    expected = torch._weight_norm(g_state["dec.conv_post.weight_v"], g_state["dec.conv_post.weight_g"], 0)
    assert torch.allclose(weight, expected)
    # Each AdamW state went to its own parameter: the file indexes them in so-vits-svc's order.
    seen, unique_keys = set(), []
    for key, value in g_state.items():
        if value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            unique_keys.append(key)
    k = unique_keys.index("dec.conv_post.weight_v")
    v_param = net_g.dec.conv_post.parametrizations.weight.original1
    assert torch.all(optim.state[v_param]["exp_avg"] == 1e-3 * (k + 1))
    net_d = MultiPeriodDiscriminator(divisor=16)
    optim_d = torch.optim.AdamW(net_d.parameters(), 1e-4)
    loaded_d = load_checkpoint(run / "D_400.pth", net_d, optim_d)
    assert loaded_d.missing == [] and loaded_d.optimizer_restored


def test_trained_model_converts_through_the_pipeline(trained, pretrain_dir):
    from svc import ConvertOptions, VitsSvc

    session = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    session.load(trained["run"] / f"G_{STEPS}.pth")
    assert session.speakers == ["alto", "bass"]
    wav = voice(0.7, 180.0, (700.0, 1100.0), 4)
    result = session.convert(wav, SR, ConvertOptions(speaker="bass", f0_method="pm"))
    audio = np.asarray(result.audio)
    assert audio.shape[-1] == len(wav) and np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_build_config_follows_preprocess_rules():
    cfg = build_config("default", ["a", "b", "c"], "whisper-ppg", vol_embedding=True)
    assert cfg["model"]["ssl_dim"] == cfg["model"]["gin_channels"] == cfg["model"]["filter_channels"] == 1024
    assert cfg["model"]["n_speakers"] == 3 and cfg["train"]["vol_aug"] and cfg["model"]["vol_embedding"]
    tiny = build_config("tiny", ["a"], "vec768l12")
    assert tiny["model"]["filter_channels"] == 512 and tiny["model"]["gin_channels"] == 768


def test_dataset_batches_have_aligned_frames(prepared):
    cfg = RunConfig.from_json(prepared["run"] / "config.json")
    clip = ClipDataset(prepared["run"], "train.txt", cfg).load(0)
    hop = cfg.train.hop_length
    assert clip.c.shape[1] == clip.f0.shape[0] == clip.spec.shape[1] == clip.audio.shape[1] // hop


def test_jobs_stop_saves_a_checkpoint_and_export_adds_the_model(trained, tmp_path, pretrain_dir):
    import time

    from svc.session import describe_model_dir, list_model_dirs
    from svc.train.jobs import TrainingJobs

    jobs = TrainingJobs(trained["root"], tmp_path / "checkpoints", pretrain_dir, env={"OMP_NUM_THREADS": "1"})
    assert "run" in jobs.runs()
    before = jobs.status("run").step
    jobs.start("run", max_steps=10**6, log_interval=1, extra_args=tuple(FAST_FLAGS))
    deadline = time.monotonic() + 900
    while jobs.status("run").step <= before and time.monotonic() < deadline:
        assert jobs.status("run").state == "training", jobs.status("run").log_tail
        time.sleep(0.5)
    assert jobs.stop()
    assert jobs.wait(600) == 0  # a graceful stop after the current step
    status = jobs.status("run")
    assert status.state == "stopped" and status.step > before
    assert f"resuming from {trained['run'] / f'G_{before}.pth'} at step {before}" in status.log_tail
    assert f"stopped at step {status.step}" in status.log_tail
    assert [r["step"] for r in status.losses][before - 1:before + 1] == [before, before + 1]
    assert status.checkpoints[-1] == status.step  # saved on the way out
    exported = jobs.export("run")
    assert exported.name == f"G_{status.step}.pth"
    saved = torch.load(exported, weights_only=True)
    assert not any(k.startswith("enc_q.") for k in saved["model"])
    assert [p.name for p in list_model_dirs(tmp_path / "checkpoints")] == ["run"]
    assert describe_model_dir(tmp_path / "checkpoints" / "run").speakers == ("alto", "bass")


def test_web_ui_train_tab(trained, tmp_path, pretrain_dir):
    import webui
    from webui_train import TrainTab, describe

    app = webui.WebApp(tmp_path / "checkpoints", pretrain_dir, "cpu", output_dir=tmp_path / "out")
    demo = webui.build_demo(device="cpu", app=app, training_runs=trained["root"])
    assert "train_status" in {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    tab = TrainTab(TrainingJobs_for(trained, tmp_path, pretrain_dir), app.refresh)
    text, figure, sample, _ = tab.poll("run")
    assert "step" in text and figure is not None and sample.endswith("_generated.wav")
    assert "idle" in describe(tab.jobs.status("run"))


def TrainingJobs_for(trained, tmp_path, pretrain_dir):
    from svc.train.jobs import TrainingJobs

    return TrainingJobs(trained["root"], tmp_path / "checkpoints", pretrain_dir)
