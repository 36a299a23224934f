"""``python -m bench.retrieval``: feature-retrieval search time, faiss vs our torch search.

Builds a 100,000-vector 768-dim index the way so-vits-svc's ``train_index`` does (faiss ``IVF{min(16 sqrt N, N
// 39)},Flat``, nprobe 1; the vectors are a mixture of Gaussians standing in for ContentVec features), pickles
it as ``feature_and_index.pkl`` and times, for 10 s of frames (44.1 kHz, hop 512: 861 frames): faiss
``search(k=8)`` plus the reference's weighting, and our ``FeatureIndex.mix`` on the loaded file, searching
with faiss and with our torch search (exact L2 within the list).  Also counts frames whose 8 neighbours differ
(torch search vs faiss).  Needs faiss-cpu (a test dependency).  Writes bench/results/<date>-retrieval.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch

from .measure import timed_runs

ROOT = Path(__file__).resolve().parent.parent
FRAMES_PER_SECOND = 44100 / 512


def clustered_features(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (200, dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    return (centres[labels] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)).astype(np.float32)


def build_index(vectors: np.ndarray):
    import faiss

    n_ivf = min(int(16 * np.sqrt(len(vectors))), len(vectors) // 39)
    index = faiss.index_factory(vectors.shape[1], f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    for i in range(0, len(vectors), 8192):
        index.add(vectors[i : i + 8192])
    return index, n_ivf


def reference_mix(index, big: np.ndarray, feats: np.ndarray, ratio: float) -> np.ndarray:
    score, ix = index.search(feats, k=8)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    npy = np.sum(big[ix] * np.expand_dims(weight, axis=2), axis=1)
    return ratio * npy + (1 - ratio) * feats


def main() -> None:
    import faiss

    from svc.timbre import load_timbre_file, retrieval

    parser = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    vectors = clustered_features(args.vectors, args.dim, 0)
    index, n_ivf = build_index(vectors)
    big = index.reconstruct_n(0, index.ntotal)
    feats = clustered_features(int(args.seconds * FRAMES_PER_SECOND), args.dim, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feature_and_index.pkl"
        path.write_bytes(pickle.dumps({0: index}))
        load_stats, model = timed_runs(lambda: load_timbre_file(path), 3)
    ours_index = model.index_of(0)
    x = torch.from_numpy(feats)
    faiss_stats, expected = timed_runs(lambda: reference_mix(index, big, feats, 0.5), args.repeats)
    ours_faiss_stats, _ = timed_runs(lambda: ours_index.mix(x.T, 0.5).T.numpy(), args.repeats)
    retrieval.USE_FAISS = False
    torch_stats, got = timed_runs(lambda: ours_index.mix(x.T, 0.5).T.numpy(), args.repeats)
    _, ix = index.search(feats, k=8)
    _, rows = ours_index.search_torch(x)
    same = np.all(np.sort(ours_index.vectors[rows].numpy(), axis=1) == np.sort(big[ix], axis=1), axis=(1, 2))
    result = {
        "date": datetime.date.today().isoformat(), "vectors": args.vectors, "dim": args.dim, "nlist": n_ivf,
        "frames": len(feats), "seconds_of_audio": args.seconds, "threads": args.threads,
        "reference_faiss_and_numpy": faiss_stats, "ours_with_faiss": ours_faiss_stats, "ours_torch": torch_stats,
        "load_pkl": load_stats,
        "frames_with_other_neighbours": int((~same).sum()),
        "max_rel_diff": float(np.abs(got - expected).max() / np.abs(expected).max()),
    }
    cases = ("reference_faiss_and_numpy", "ours_with_faiss", "ours_torch")
    per_second = {k: result[k]["wall"]["median"] / args.seconds for k in cases}
    print(f"index: {args.vectors} x {args.dim}, {n_ivf} lists; {len(feats)} frames ({args.seconds:g} s), "
          f"{args.threads} threads")
    for name, value in per_second.items():
        print(f"{name:22s} {1000 * value:7.2f} ms per second of audio")
    print(f"load feature_and_index.pkl: {load_stats['wall']['median']:.2f} s; frames with other neighbours: "
          f"{result['frames_with_other_neighbours']}; max rel diff {result['max_rel_diff']:.2g}")
    out = ROOT / "bench" / "results" / f"{result['date']}-retrieval.json"
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
