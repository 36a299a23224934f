"""Shallow diffusion: loading (formats, safety, mismatches), the sampler table, modes, progress and the CLI."""

import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from conftest import sung_note  # noqa: E402
from diffusion_fixtures import VOCODER_CONFIG, build_diffusion_env, write_diffusion_model  # noqa: E402
from enhancer_fixtures import write_tiny_nsf_hifigan  # noqa: E402

from svc import ConvertOptions, VitsSvc  # noqa: E402
from svc.cli import main  # noqa: E402
from svc.diffusion import SAMPLERS, DiffusionConfig, find_diffusion_files, get_sampler  # noqa: E402
from svc.diffusion.loading import load_diffusion, resolve_diffusion_files  # noqa: E402
from svc.diffusion.samplers import ANCESTRAL  # noqa: E402
from svc.errors import CheckpointError, ConfigError, OptionsError, WeightFileError  # noqa: E402
from svc.session import describe_model_dir  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return build_diffusion_env(tmp_path_factory.mktemp("diff"))


@pytest.fixture(scope="module")
def session(env):
    pretrain, checkpoints = env
    s = VitsSvc(device="cpu", pretrain_dir=pretrain)
    s.load(checkpoints / "tiny41")
    return s


@pytest.fixture()
def model_copy(env, tmp_path):
    """A copy of the tiny41 model folder (with its diffusion/) to modify."""
    return Path(shutil.copytree(env[1] / "tiny41", tmp_path / "m"))


WAV = sung_note(0.6, 44100, 230.0, 2)


# --- loading ----------------------------------------------------------------------------------

def test_official_files_load_strictly_and_are_found_beside_the_model(env, model_copy):
    write_diffusion_model(model_copy / "diffusion", step=2000)  # the highest step wins
    files = find_diffusion_files(model_copy)
    assert files.model.name == "model_2000.pt" and files.config.name == "config.yaml"
    model = load_diffusion(files)
    assert model.mel_bins == 32 and model.config.k_step_max == 1000 and model.config.method == "dpm-solver++"
    assert sorted(model.net.state_dict()) == sorted(torch.load(files.model, weights_only=True)["model"])
    assert describe_model_dir(model_copy).diffusion == "diffusion/model_2000.pt"
    assert describe_model_dir(env[1] / "tiny41").diffusion == "diffusion/model_100.pt"


def test_config_defaults_follow_the_reference():
    raw = yaml.safe_load(yaml.dump({"data": {"sampling_rate": 44100, "block_size": 512, "encoder": "vec768l12",
                                             "encoder_out_channels": 768},
                                    "model": {"n_layers": 20, "n_chans": 512, "n_hidden": 256, "timesteps": None,
                                              "k_step_max": 0}, "vocoder": {}, "infer": {}}))
    cfg = DiffusionConfig.from_dict(raw)
    assert (cfg.timesteps, cfg.k_step_max, cfg.n_spk, cfg.unit_interpolate_mode) == (1000, 1000, 1, "left")
    assert (cfg.method, cfg.speedup, cfg.vocoder_type) == ("dpm-solver++", 10, "nsf-hifigan")
    assert DiffusionConfig.from_dict({**raw, "model": {**raw["model"], "k_step_max": 100}}).k_step_max == 100


def test_diffusion_yaml_name_and_explicit_config(tmp_path):
    path = write_diffusion_model(tmp_path / "d", config_name="diffusion.yaml")
    assert resolve_diffusion_files(path).config.name == "diffusion.yaml"
    assert resolve_diffusion_files(tmp_path / "d").model == path
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_diffusion_files(path, tmp_path / "nope.yaml")
    (tmp_path / "d" / "diffusion.yaml").unlink()
    with pytest.raises(ConfigError, match="config.yaml"):
        resolve_diffusion_files(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_diffusion_files(tmp_path / "missing.pt")


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_file_that_carries_code_is_refused(tmp_path):
    path = write_diffusion_model(tmp_path / "d")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra": Payload()}, path)
    with pytest.raises(WeightFileError, match="refusing to load"):
        load_diffusion(resolve_diffusion_files(path))
    path.write_bytes(pickle.dumps({"model": "x"})[:10])
    with pytest.raises(WeightFileError):
        load_diffusion(resolve_diffusion_files(path))


def test_wrong_keys_or_shapes_name_the_file(tmp_path):
    path = write_diffusion_model(tmp_path / "d")
    cfg = yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())
    cfg["model"]["n_layers"] = 3
    (tmp_path / "d" / "config.yaml").write_text(yaml.dump(cfg))
    with pytest.raises(WeightFileError, match="model_100.pt.*does not match"):
        load_diffusion(resolve_diffusion_files(path))
    torch.save({"global_step": 1}, path)
    with pytest.raises(WeightFileError, match="no 'model' weights"):
        load_diffusion(resolve_diffusion_files(path))


@pytest.mark.parametrize(("changes", "message"), [
    ({"model_n_spk": 2}, "2 speaker"),
    ({"data_sampling_rate": 32000}, "32000 Hz"),
    ({"data_block_size": 320}, "hop 320"),
    ({"data_encoder_out_channels": 768}, "768-dim content"),
    ({"data_encoder": "nosuch"}, "unknown speech encoder"),
])
def test_mismatches_with_the_voice_model_are_clear_errors(env, tmp_path, changes, message):
    s = VitsSvc(device="cpu", pretrain_dir=env[0])
    s.load(env[1] / "tiny41")
    path = write_diffusion_model(tmp_path / "d", **changes)
    with pytest.raises(ConfigError, match=message):
        s.load_diffusion(path)
    assert s.diffusion is not None and s.diffusion.files.model.parent.name == "diffusion"  # unchanged


def test_vocoder_mismatch_is_a_clear_error(env, tmp_path):
    pretrain = Path(shutil.copytree(env[0], tmp_path / "pretrain"))
    write_tiny_nsf_hifigan(pretrain, 0, {**VOCODER_CONFIG, "num_mels": 16})
    s = VitsSvc(device="cpu", pretrain_dir=pretrain)
    s.load(env[1] / "tiny41")
    with pytest.raises(ConfigError, match="32-bin mels but the vocoder takes 16"):
        s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True))


def test_missing_vocoder_names_the_file(env, tmp_path):
    pretrain = Path(shutil.copytree(env[0], tmp_path / "pretrain"))
    shutil.rmtree(pretrain / "nsf_hifigan")
    s = VitsSvc(device="cpu", pretrain_dir=pretrain)
    s.load(env[1] / "tiny41")
    with pytest.raises(WeightFileError, match="nsf_hifigan/model"):
        s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True))


def test_k_step_and_step_count_limits(session, tmp_path):
    with pytest.raises(OptionsError, match="at least 2 steps"):
        session.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True, k_step=15))
    s = VitsSvc(device="cpu", pretrain_dir=session.pretrain_dir)
    s.load(session.model_path)
    s.load_diffusion(write_diffusion_model(tmp_path / "d", model_k_step_max=50))
    with pytest.raises(OptionsError, match="beyond this diffusion model's k_step_max \\(50\\)"):
        s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True, k_step=60))
    with pytest.raises(OptionsError, match="shallow diffusion only"):
        s.convert(WAV, 44100, ConvertOptions(only_diffusion=True))
    with pytest.raises(OptionsError, match="k_step"):
        ConvertOptions(k_step=0)
    with pytest.raises(OptionsError, match="not both"):
        ConvertOptions(shallow_diffusion=True, only_diffusion=True)


def test_no_diffusion_model_is_a_clear_error(env, tmp_path):
    folder = Path(shutil.copytree(env[1] / "tiny41", tmp_path / "m"))
    shutil.rmtree(folder / "diffusion")
    s = VitsSvc(device="cpu", pretrain_dir=env[0])
    s.load(folder)
    with pytest.raises(OptionsError, match="no diffusion model is loaded"):
        s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True))


# --- samplers and modes ------------------------------------------------------------------------

def test_one_registry_with_the_reference_sampler_names():
    assert list(SAMPLERS) == ["ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc"]
    assert get_sampler("unipc", 1) is ANCESTRAL and get_sampler("ddim", 10) is SAMPLERS["ddim"]
    assert [SAMPLERS[m].evaluations(100, 10) for m in SAMPLERS] == [10, 11, 10, 10, 10]
    with pytest.raises(OptionsError, match="unknown diffusion sampler 'euler'; available: ddim"):
        get_sampler("euler", 10)


def test_progress_reports_diffusion_steps_and_cost_is_per_piece(session):
    messages, fractions = [], []
    options = ConvertOptions(shallow_diffusion=True, k_step=40, diffusion_method="ddim", clip_seconds=0.3)
    result = session.convert(WAV, 44100, options, lambda f, text: (messages.append(text), fractions.append(f)))
    steps = [m for m in messages if "diffusion step" in m]
    assert steps[:4] == [f"chunk 1/1, piece 1/2: diffusion step {i}/4" for i in range(1, 5)]
    assert steps[-1] == "chunk 1/1, piece 2/2: diffusion step 4/4"
    # Every step moves the bar (within the piece's share), and the bar never goes back.
    step_fractions = [f for f, m in zip(fractions, messages, strict=True) if "diffusion step" in m]
    assert len(set(step_fractions)) == len(step_fractions) and fractions == sorted(fractions)
    assert result.timings["diffusion"] > 0 and len(result.audio) == len(WAV)


def test_modes_differ_and_repeat(session):
    outs = {}
    for name, opts in {"plain": {}, "shallow": {"shallow_diffusion": True},
                       "second": {"shallow_diffusion": True, "second_encoding": True},
                       "only": {"only_diffusion": True, "diffusion_speedup": 100}}.items():
        outs[name] = session.convert(WAV, 44100, ConvertOptions(speaker="carol", **opts)).audio
        again = session.convert(WAV, 44100, ConvertOptions(speaker="carol", **opts)).audio
        assert np.array_equal(outs[name], again), name
    for a, b in [("plain", "shallow"), ("shallow", "second"), ("shallow", "only")]:
        assert np.abs(outs[a] - outs[b]).max() > 1e-3, (a, b)


def test_own_encoder_when_it_differs_from_the_voice_models(env, tmp_path):
    """A diffusion model on another encoder gets content from its own encoder, not the generator's."""
    s = VitsSvc(device="cpu", pretrain_dir=env[0])
    s.load(env[1] / "tiny41")
    shared = s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True)).audio
    s.load_diffusion(write_diffusion_model(tmp_path / "d", data_encoder="hubertsoft"))
    with pytest.raises(WeightFileError, match="hubert-soft"):
        s.convert(WAV, 44100, ConvertOptions(shallow_diffusion=True))
    assert len(shared) == len(WAV)


# --- command line ------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_flags(capsys):
    with pytest.raises(SystemExit):
        main(["infer", "-h"])
    out = capsys.readouterr().out
    for flag in ("--diffusion ", "--diffusion-config", "--shallow-diffusion",
                 "--only-diffusion", "--k-step", "--second-encoding", "--diffusion-method", "--diffusion-speedup"):
        assert flag in out, flag
    assert "{ddim,pndm,dpm-solver,dpm-solver++,unipc}" in out and "(default 100)" in out


def test_cli_shallow_and_only_diffusion(capsys, env, tmp_path):
    pretrain, checkpoints = env
    sf.write(tmp_path / "a.wav", WAV, 44100)
    code, out, err = run_cli(capsys, "infer", "-m", checkpoints / "tiny41", "-s", "bob", "--pretrain", pretrain,
                             "--device", "cpu", "--no-progress", "--shallow-diffusion", "--k-step", "30",
                             "--diffusion-method", "pndm", tmp_path / "a.wav", "-o", tmp_path / "out")
    assert code == 0, err
    assert Path(out.strip()).name.startswith("a_bob_")
    diffusion = checkpoints / "tiny41" / "diffusion" / "model_100.pt"
    code, out, err = run_cli(capsys, "infer", "--diffusion", diffusion, "--only-diffusion", "-s", "carol",
                             "--diffusion-speedup", "100", "--pretrain", pretrain, "--device", "cpu",
                             "--no-progress", tmp_path / "a.wav", "-o", tmp_path / "only")
    assert code == 0, err
    assert Path(out.strip()).name.startswith("a_carol_")


def test_cli_errors_are_one_line(capsys, env, tmp_path):
    pretrain, checkpoints = env
    sf.write(tmp_path / "a.wav", WAV, 44100)
    code, _, err = run_cli(capsys, "infer", "-m", checkpoints / "tiny41", "--pretrain", pretrain, "--device", "cpu",
                           "--shallow-diffusion", "--k-step", "5", "--no-progress", tmp_path / "a.wav",
                           "-o", tmp_path / "out")
    assert code == 1 and "at least 2 steps" in err and len(err.strip().splitlines()) == 2
    code, _, err = run_cli(capsys, "infer", "--shallow-diffusion", tmp_path / "a.wav")
    assert code == 1 and err.strip() == "error: give the voice model with -m/--model (only --only-diffusion works " \
                                        "without one)"
