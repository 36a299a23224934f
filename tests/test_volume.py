"""Volume feature and loudness-envelope mix against so-vits-svc 4.1's outputs on the same signals."""

import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reference_compare import assert_close_to_reference  # noqa: E402
from volume_fixtures import change_rms_inputs, volume_input  # noqa: E402

from svc.volume import change_rms, extract_volume, frame_rms  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("hop", [256, 75])
def test_volume_matches_reference(hop: int) -> None:
    wav = torch.from_numpy(volume_input())
    expected = np.load(DATA / f"volume_ref_hop{hop}.npy")
    got = extract_volume(wav[None], hop)
    assert got.shape == (len(wav) // hop,) == expected.shape
    # an RMS per frame: float32 summation order is the only noise (measured 143 dB, 1.4e-7 x peak)
    assert_close_to_reference(got.numpy(), expected, min_snr_db=110, max_rel=1e-5, what=f"volume hop {hop}")
    assert torch.equal(extract_volume(wav, hop), got)


def test_volume_is_centred_rms() -> None:
    # Independent check: frame t is the RMS of samples [t*hop - hop//2, t*hop + (hop+1)//2).
    wav = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    hop = 100
    got = extract_volume(wav, hop)
    t = 5
    seg = wav[t * hop - hop // 2: t * hop + (hop + 1) // 2]
    assert got[t].item() == pytest.approx(seg.pow(2).mean().sqrt().item(), rel=1e-5)
    with pytest.raises(ValueError):
        extract_volume(torch.zeros(2, 1000), hop)
    assert extract_volume(torch.ones(99), hop).shape == (0,)
    assert extract_volume(torch.ones(100), hop).tolist() == [1.0]


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_change_rms_matches_reference(rate: float) -> None:
    src, sr1, out, sr2 = change_rms_inputs()
    expected = np.load(DATA / f"change_rms_ref_r{rate}.npy")
    before = out.copy()
    tensor = torch.from_numpy(out)
    got = change_rms(src, sr1, tensor, sr2, rate)
    # measured 142 dB, 2.8e-7 x peak across kernel paths
    assert_close_to_reference(got.numpy(), expected, min_snr_db=110, max_rel=1e-5, what=f"change_rms {rate}")
    np.testing.assert_array_equal(out, before)  # the input is not modified


def test_change_rms_rate_one_is_identity_and_zero_copies_envelope() -> None:
    src, sr1, out, sr2 = change_rms_inputs()
    tensor = torch.from_numpy(out)
    assert change_rms(src, sr1, tensor, sr2, 1.0) is tensor
    mixed = change_rms(src, sr1, tensor, sr2, 0.0).numpy()
    # With rate 0 the output takes the source's half-second loudness (up to interpolation).
    r_src = librosa.feature.rms(y=src, frame_length=sr1 // 2 * 2, hop_length=sr1 // 2)[0]
    r_mix = librosa.feature.rms(y=mixed, frame_length=sr2 // 2 * 2, hop_length=sr2 // 2)[0]
    assert np.corrcoef(r_src[1:-1], r_mix[1:-1])[0, 1] > 0.9


def test_frame_rms_empty_and_short() -> None:
    assert frame_rms(np.zeros(0, np.float32), 4, 2).shape == (1,)
    assert frame_rms(np.ones(3, np.float32), 8, 4)[0] == pytest.approx(np.sqrt(3 / 8))
