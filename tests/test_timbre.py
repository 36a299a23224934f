"""Timbre controls: kmeans cluster models, feature indexes, speaker mixes and their errors."""

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from conftest import SPEAKERS, sung_note  # noqa: E402
from timbre_fixtures import (  # noqa: E402
    index_pickle,
    ivf_flat_bytes,
    malicious_kmeans,
    malicious_pickle,
    random_features,
    write_feature_index,
    write_kmeans,
)

from svc import ConvertOptions, VitsSvc  # noqa: E402
from svc.errors import OptionsError, TimbreFileError  # noqa: E402
from svc.slicer import Chunk  # noqa: E402
from svc.timbre import (  # noqa: E402
    KMeansModel,
    RetrievalModel,
    find_timbre_file,
    load_timbre_file,
    retrieval,  # noqa: E402
)
from svc.timbre.cluster import nearest_centre  # noqa: E402
from svc.timbre.spk_mix import MixPlan, SpeakerMixTrack, mix_weights, parse_speaker_mix  # noqa: E402

SPK = {name: i for i, name in enumerate(SPEAKERS)}


# --- kmeans -------------------------------------------------------------------------------------

@pytest.mark.parametrize("numpy1", [False, True])
def test_kmeans_file_loads_weights_only(tmp_path, numpy1):
    path = write_kmeans(tmp_path / "kmeans_10000.pt", SPEAKERS, dim=16, n_clusters=5, numpy1=numpy1)
    if numpy1:
        assert b"numpy.core.multiarray" in _pickle_bytes(path)
    model = load_timbre_file(path)
    assert isinstance(model, KMeansModel) and model.speakers == list(SPEAKERS) and model.dim == 16
    raw = torch.load(path, weights_only=False)
    assert np.array_equal(model.centres["bob"].numpy(), raw["bob"]["cluster_centers_"])


def _pickle_bytes(path):
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_nearest_centre_equals_sklearn_predict():
    from sklearn.cluster import KMeans

    centres = random_features(40, 32, 1)
    x = random_features(300, 32, 2)
    km = KMeans(40)
    km.__dict__.update(n_features_in_=32, _n_threads=1, cluster_centers_=centres)
    ours = nearest_centre(torch.from_numpy(x), torch.from_numpy(centres), block=64)
    assert np.array_equal(ours.numpy(), km.predict(x))


def test_kmeans_mix_formula(tmp_path):
    model = load_timbre_file(write_kmeans(tmp_path / "k.pt", SPEAKERS, dim=8, n_clusters=4))
    c = torch.from_numpy(random_features(10, 8, 3)).T
    centres = model.centres["carol"]
    labels = ((c.T[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    expected = 0.3 * centres[labels].T + 0.7 * c
    assert torch.allclose(model.mix(c, "carol", 0.3), expected, atol=1e-6)
    with pytest.raises(TimbreFileError, match="no speaker 'dave'.*alice, bob, carol"):
        model.mix(c, "dave", 0.3)


def test_malicious_kmeans_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = malicious_kmeans(tmp_path / "kmeans_10000.pt", marker)
    with pytest.raises(TimbreFileError, match="loads safely"):
        load_timbre_file(path)
    assert not marker.exists()


# --- feature index ------------------------------------------------------------------------------

def test_malicious_index_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(TimbreFileError, match="not loaded.*posix.system|not loaded.*os.system"):
        load_timbre_file(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same file does run code with plain pickle: the test is real
    assert marker.exists()


@pytest.mark.parametrize("data, message", [
    (b"\x80\x04K\x01.", "expected"),  # a pickled int
    (index_pickle({0: b"IwFl\x01"}), "truncated"),
    (index_pickle({0: b"IxHf" + b"\0" * 40}), "not supported"),
    (b"\x80\x04}J\x00\x00", "truncated"),
    (b"hello world", "neither"),
])
def test_bad_index_files_are_clear_errors(tmp_path, data, message):
    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(data)
    with pytest.raises(TimbreFileError, match=message):
        load_timbre_file(path)


def test_fixture_index_reads_as_faiss_reads_it(tmp_path):
    faiss = pytest.importorskip("faiss")
    path = write_feature_index(tmp_path / "feature_and_index.pkl", [0, 2], dim=16, n_vectors=400, seed=4)
    theirs = pickle.loads(path.read_bytes())  # real faiss objects
    ours = load_timbre_file(path)
    assert isinstance(ours, RetrievalModel) and ours.speaker_ids == [0, 2]
    assert isinstance(theirs[2], faiss.IndexIVFFlat) and theirs[2].ntotal == 400
    _assert_same_search(theirs[2], ours.index_of(2), random_features(200, 16, 9))


def test_faiss_written_index_as_train_index_builds_it(tmp_path, monkeypatch):
    """An index built and pickled by faiss itself, the way so-vits-svc's utils.train_index does."""
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(c, 0.3, (120, 24)) for c in rng.normal(0, 1, (10, 24))]).astype(np.float32)
    vectors = vectors[rng.permutation(len(vectors))]
    n_ivf = min(int(16 * np.sqrt(len(vectors))), len(vectors) // 39)
    index = faiss.index_factory(24, f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    index.add(vectors)
    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(pickle.dumps({1: index}))
    ours = load_timbre_file(path).index_of(1)
    queries = rng.normal(0, 1, (300, 24)).astype(np.float32)
    _assert_same_search(index, ours, queries)
    # the reference's retrieval mix
    d, ix = index.search(queries, k=8)
    big = index.reconstruct_n(0, index.ntotal)
    w = np.square(1 / d)
    w /= w.sum(axis=1, keepdims=True)
    expected = 0.6 * np.sum(big[ix] * w[:, :, None], axis=1) + 0.4 * queries
    got = ours.mix(torch.from_numpy(queries).T, 0.6).T.numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    monkeypatch.setattr(retrieval, "USE_FAISS", False)
    got = ours.mix(torch.from_numpy(queries).T, 0.6).T.numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def _assert_same_search(faiss_index, ours, queries):
    """Both our searches (faiss on the validated bytes, and torch) find faiss's own neighbours."""
    d, ix = faiss_index.search(queries, 8)
    big = faiss_index.reconstruct_n(0, faiss_index.ntotal)
    valid = ix >= 0
    for search in (ours.search_faiss, ours.search_torch):
        dist, rows = search(torch.from_numpy(queries))
        assert np.array_equal(np.isinf(dist.numpy()), ~valid)
        assert np.array_equal(ours.vectors[rows].numpy()[valid], big[ix][valid])
        assert np.allclose(dist.numpy()[valid], d[valid], rtol=1e-5)


def test_exact_match_gets_all_the_weight():
    from svc.timbre.faiss_format import parse_ivf_flat
    from svc.timbre.retrieval import FeatureIndex

    vectors = random_features(80, 8, 1)
    index = FeatureIndex.from_ivf(parse_ivf_flat(ivf_flat_bytes(vectors, 2)))
    out = index.mix(torch.from_numpy(vectors[:5]).T, 1.0).T
    assert torch.isfinite(out).all() and torch.allclose(out, torch.from_numpy(vectors[:5]))


def test_find_timbre_file(tmp_path):
    assert find_timbre_file(tmp_path) is None
    write_feature_index(tmp_path / "feature_and_index.pkl", [0], dim=8, n_vectors=80)
    assert find_timbre_file(tmp_path).name == "feature_and_index.pkl"
    write_kmeans(tmp_path / "kmeans_10000.pt", SPEAKERS, dim=8, n_clusters=3)
    assert find_timbre_file(tmp_path).name == "kmeans_10000.pt"


# --- speaker mix --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"dave": [[0, 1, 1, 1]]}, "unknown speaker 'dave'.*alice \\(0\\)"),
    ({"7": [[0, 1, 1, 1]]}, "unknown speaker 7"),
    ({"alice": [[0, 0.4, 1, 1], [0.5, 1, 1, 1]]}, "gap between 0.4 and 0.5"),
    ({"alice": [[0, 0.6, 1, 1], [0.5, 1, 1, 1]]}, "overlap"),
    ({"alice": [[0.1, 1, 1, 1]]}, "must start at 0"),
    ({"alice": [[0, 0.9, 1, 1]]}, "must end at 1"),
    ({"alice": [[0, 1, -1, 1]]}, "negative"),
    ({"alice": [[0, 1, 1]]}, "four numbers"),
    ({"alice": [[0.5, 0.5, 1, 1]]}, "end after it starts"),
    ({"alice": [[0, 0.5, 1, 0], [0.5, 1, 0, 0]], "bob": [[0, 1, 0, 0]]}, "all speaker weights are 0 between 0.5 and 1"),
    ({"alice": [[0, 1, 0, 0]]}, "all speaker weights are 0"),
    ({"alice": [[0, 1, 1, 1]], "0": [[0, 1, 1, 1]]}, "twice"),
    ("{not json", "not valid JSON"),
    ("no/such/mix.json", "does not exist"),
    ({"unit": "minutes", "mix": {"alice": [[0, 1, 1, 1]]}}, "unit"),
])
def test_speaker_mix_errors(spec, message):
    with pytest.raises(OptionsError, match=message):
        parse_speaker_mix(spec, SPK)


def test_speaker_mix_from_file_and_ids(tmp_path):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps({"0": [[0, 1, 0.25, 0.25]], "carol": [[0, 1, 0.75, 0.75]]}))
    mix = parse_speaker_mix(str(path), SPK)
    w = mix_weights(mix, 10)
    assert w.shape == (10, 3) and torch.allclose(w[:, 0], torch.full((10,), 0.25)) and not w[:, 1].any()


def test_weights_follow_the_reference_rules():
    mix = parse_speaker_mix({"alice": [[0, 0.5, 1, 0], [0.5, 1, 0, 0]], "bob": [[0, 0.5, 0, 0], [0.5, 1, 0, 1]]}, SPK)
    w = mix_weights(mix, 8)
    # alice: arange(1, 0, -0.25) over frames 0-3, then 0; bob: 0, then arange(0, 1, 0.25)
    assert torch.equal(w[:4, 0], torch.ones(4)) and torch.equal(w[1:4, 1], torch.zeros(3))
    assert torch.equal(w[4], torch.tensor([1 / 3, 1 / 3, 1 / 3]))  # both 0 where the ramps meet: all equal
    assert torch.equal(w[5:, 1], torch.ones(3))
    assert torch.allclose(w.sum(1), torch.ones(8))


def test_timeline_length_matches_measured_reference_numbers():
    plan = MixPlan(parse_speaker_mix({"alice": [[0, 1, 1, 1]]}, SPK), 44100, 512, 0.5, 0.0, 0.0)
    chunks = [Chunk(0, 178164, True), Chunk(178164, 178164 + 20286, False)]
    assert plan.timeline_length(chunks, 44100) == 475
    chunks = [Chunk(0, 231084, True), Chunk(231084, 231084 + 33516, True)]
    assert plan.timeline_length(chunks, 44100) == 690
    track = plan.track(chunks, 44100)
    track.begin_chunk()
    track.take(537)
    track.begin_chunk()
    assert track.offset == 537  # the second chunk reads frames 537-687


def test_track_places_auto_split_pieces_by_time():
    track = SpeakerMixTrack(torch.arange(100.0)[:, None], 44100, 44100, 512)
    track.silence(512 * 10)
    track.begin_chunk()
    assert track.take(5)[0, 0] == 10
    track.begin_chunk()
    assert track.take(3, start_in_chunk=512 * 20)[0, 0] == 35
    assert track.take(200)[-1, 0] == 99  # beyond the timeline: the last column


# --- options and session ------------------------------------------------------------------------

def test_options_validate_timbre_settings():
    with pytest.raises(OptionsError, match="cluster_ratio must be between 0.0 and 1.0"):
        ConvertOptions(cluster_ratio=1.5)
    with pytest.raises(OptionsError, match="cluster_ratio must be 0 with spk_mix"):
        ConvertOptions(cluster_ratio=0.5, spk_mix={"alice": [[0, 1, 1, 1]]})


@pytest.fixture(scope="module")
def session(checkpoints_dir, pretrain_dir):
    s = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    s.load(checkpoints_dir / "tiny41")
    return s


def test_ratio_without_a_file_is_an_error(session):
    with pytest.raises(OptionsError, match="needs a cluster model"):
        session.convert(sung_note(0.3), 44100, ConvertOptions(cluster_ratio=0.5))


def test_file_of_another_model_is_an_error(session, tmp_path):
    path = write_kmeans(tmp_path / "kmeans_10000.pt", SPEAKERS, dim=768, n_clusters=4)
    with pytest.raises(TimbreFileError, match="768-dim features but the model takes 256"):
        session.convert(sung_note(0.3), 44100, ConvertOptions(cluster_ratio=0.5, cluster=str(path)))
    path = write_kmeans(tmp_path / "kmeans_other.pt", ("x", "y"), dim=256, n_clusters=4)
    with pytest.raises(TimbreFileError, match="no speaker 'alice'"):
        session.convert(sung_note(0.3), 44100, ConvertOptions(cluster_ratio=0.5, cluster=str(path)))
    path = write_feature_index(tmp_path / "feature_and_index.pkl", [5], dim=256, n_vectors=80)
    with pytest.raises(TimbreFileError, match="no speaker id 0"):
        session.convert(sung_note(0.3), 44100, ConvertOptions(cluster_ratio=0.5, cluster=str(path)))


def test_ratio_zero_reads_no_file(session, tmp_path):
    options = ConvertOptions(cluster_ratio=0.0, cluster=str(tmp_path / "missing.pt"))
    assert session.convert(sung_note(0.3), 44100, options).audio.size


def test_static_mix_of_one_speaker_equals_that_speaker(session):
    wav = sung_note(0.6)
    plain = session.convert(wav, 44100, ConvertOptions(speaker="carol")).audio
    mixed = session.convert(wav, 44100, ConvertOptions(spk_mix={"carol": [[0, 1, 2, 2]]})).audio
    assert np.abs(plain - mixed).max() < 1e-4


def test_seconds_form_maps_onto_the_timeline(session):
    wav = sung_note(1.0)
    segments = {"alice": [[0, 0.5, 1, 1], [0.5, 1, 0, 0]], "bob": [[0, 0.5, 0, 0], [0.5, 1, 1, 1]]}
    by_fraction = session.convert(wav, 44100, ConvertOptions(spk_mix=segments))
    by_seconds = session.convert(wav, 44100, ConvertOptions(spk_mix={"unit": "seconds", "mix": segments}))
    assert np.array_equal(by_fraction.audio, by_seconds.audio)  # 1 s of input: seconds = fractions


# --- command line -------------------------------------------------------------------------------

def test_cli_flags_drive_the_timbre_settings(tmp_path, checkpoints_dir, pretrain_dir, capsys):
    import soundfile as sf

    from svc.cli import main

    song = tmp_path / "a.wav"
    sf.write(song, sung_note(0.6), 44100)
    index = write_feature_index(tmp_path / "feature_and_index.pkl", [0, 1, 2], dim=256, n_vectors=120)
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"alice": [[0, 1, 0.5, 0.5]], "bob": [[0, 1, 0.5, 0.5]]}))
    common = ["infer", "-m", str(checkpoints_dir / "tiny41"), "--pretrain", str(pretrain_dir), "--device", "cpu",
              "--no-progress", str(song)]
    runs = {"plain": [], "index": ["--cluster", str(index), "--cluster-ratio", "0.8"], "mix": ["--spk-mix", str(mix)]}
    outputs = {}
    for name, flags in runs.items():
        assert main([*common, "-o", str(tmp_path / name), *flags]) == 0, capsys.readouterr().err
        outputs[name] = sf.read(next((tmp_path / name).iterdir()))[0]
    assert np.abs(outputs["plain"] - outputs["index"]).max() > 0.05
    assert np.abs(outputs["plain"] - outputs["mix"]).max() > 0.05
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "bad"), "--cluster-ratio", "0.5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "needs a cluster model" in err
    assert main([*common, "-o", str(tmp_path / "bad"), "--spk-mix", str(tmp_path / "nope.json")]) == 1
    assert "spk_mix file" in capsys.readouterr().err


def test_file_kind_comes_from_the_content_not_the_name(tmp_path):
    index = write_feature_index(tmp_path / "kmeans_10000.pt", [0], dim=8, n_vectors=80)
    kmeans = write_kmeans(tmp_path / "feature_and_index.pkl", SPEAKERS, dim=8, n_clusters=3)
    assert isinstance(load_timbre_file(index), RetrievalModel)
    assert isinstance(load_timbre_file(kmeans), KMeansModel)


def test_infer_help_names_the_flags(capsys):
    from svc.cli import main

    with pytest.raises(SystemExit):
        main(["infer", "-h"])
    text = capsys.readouterr().out
    for flag in ("--cluster FILE", "--cluster-ratio", "--spk-mix FILE"):
        assert flag in text
