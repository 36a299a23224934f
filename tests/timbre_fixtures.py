"""Cluster models and feature indexes in so-vits-svc 4.1's file formats, for tests.

* ``write_kmeans`` writes ``kmeans_*.pt`` as ``cluster/train_cluster.py`` does: ``torch.save`` of
  ``{speaker name: {"n_features_in_", "_n_threads", "cluster_centers_" (NumPy float32)}}``;
  ``numpy1=True`` rewrites the pickle with NumPy 1.x's module names (the reference pins NumPy 1.23).
* ``write_feature_index`` writes ``feature_and_index.pkl`` as ``train_index.py`` does: a pickle of
  ``{speaker id: faiss IndexIVFFlat}``.  The index bytes are written here in faiss's ``write_index``
  layout (so no faiss is needed and the file is identical on every machine); centroids are
  spread-out stored vectors and every vector sits in its nearest centroid's list, ids in order.
  ``tests/test_timbre.py`` checks with faiss that faiss reads these files as the same index.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

FEATURE_STD = 0.5  # about the spread of the test ContentVec's 256-dim features


def random_features(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (FEATURE_STD * rng.standard_normal((n, dim))).astype(np.float32)


def write_kmeans(path: Path, speakers: dict[str, int] | tuple[str, ...], dim: int = 256, n_clusters: int = 32,
                 seed: int = 0, numpy1: bool = False) -> Path:
    """A ``kmeans_*.pt`` with ``n_clusters`` random centres for each speaker name."""
    names = list(speakers)
    ckpt = {name: {"n_features_in_": dim, "_n_threads": 2,
                   "cluster_centers_": random_features(n_clusters, dim, seed + 17 * i)}
            for i, name in enumerate(names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    if numpy1:
        _rewrite_pickle(path, lambda b: b.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    return path


def _rewrite_pickle(path: Path, change) -> None:
    """Apply ``change`` to the ``data.pkl`` record of a torch zip file."""
    with zipfile.ZipFile(path) as zin:
        records = [(info.filename, zin.read(info.filename)) for info in zin.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for name, data in records:
            zout.writestr(name, change(data) if name.endswith("data.pkl") else data)
    path.write_bytes(out.getvalue())


def ivf_flat_bytes(vectors: np.ndarray, nlist: int) -> bytes:
    """faiss ``write_index`` bytes of an L2 IndexIVFFlat (nprobe 1) holding ``vectors`` with ids 0..N-1."""
    n, d = vectors.shape
    centroids = vectors[np.linspace(0, n - 1, nlist).astype(int)].copy()
    dists = ((vectors[:, None, :] - centroids[None]) ** 2).sum(-1)
    lists = dists.argmin(axis=1)

    def header(dim: int, ntotal: int) -> bytes:
        return struct.pack("<iqqqBi", dim, ntotal, 1 << 20, 1 << 20, 1, 1)

    out = [b"IwFl", header(d, n), struct.pack("<QQ", nlist, 1)]
    out += [b"IxF2", header(d, nlist), struct.pack("<Q", nlist * d), centroids.astype("<f4").tobytes()]
    out += [struct.pack("<BQ", 0, 0)]  # no direct map
    sizes = np.bincount(lists, minlength=nlist)
    out += [b"ilar", struct.pack("<QQ", nlist, 4 * d), b"full", struct.pack("<Q", nlist),
            sizes.astype("<u8").tobytes()]
    for lst in range(nlist):
        members = np.flatnonzero(lists == lst)
        out += [vectors[members].astype("<f4").tobytes(), members.astype("<i8").tobytes()]
    return b"".join(out)


def index_pickle(indexes: dict[int, bytes], module: str = "faiss.swigfaiss") -> bytes:
    """The pickle (protocol 4) of ``{speaker id: IndexIVFFlat}`` as faiss's own pickling writes it."""
    body = [b"\x80\x04}"]  # PROTO 4, EMPTY_DICT
    for sid, data in indexes.items():
        body += [b"J" + struct.pack("<i", sid)]  # BININT key
        for text in (module, "IndexIVFFlat"):
            raw = text.encode()
            body += [b"\x8c" + bytes([len(raw)]) + raw]  # SHORT_BINUNICODE
        body += [b"\x93)\x81}"]  # STACK_GLOBAL, EMPTY_TUPLE, NEWOBJ, EMPTY_DICT
        body += [b"\x8c\x04this", b"\x8e" + struct.pack("<Q", len(data)) + data]  # BINBYTES8
        body += [b"sbs"]  # SETITEM (state), BUILD, SETITEM (outer dict)
    return b"".join(body) + b"."


def write_feature_index(path: Path, speaker_ids: list[int] | tuple[int, ...], dim: int = 256,
                        n_vectors: int = 300, seed: int = 0) -> Path:
    """A ``feature_and_index.pkl`` with an IVF index of ``n_vectors`` random features per speaker id,
    ``nlist = min(int(16 * sqrt(N)), N // 39)`` as so-vits-svc's ``train_index`` chooses."""
    nlist = min(int(16 * np.sqrt(n_vectors)), n_vectors // 39)
    blobs = {sid: ivf_flat_bytes(random_features(n_vectors, dim, seed + 31 * sid), nlist) for sid in speaker_ids}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(index_pickle(blobs))
    return path


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


def malicious_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` through ``os.system`` when loaded with plain ``pickle.load``."""
    return pickle.dumps({0: _Exploit(marker)}, protocol=4)


def malicious_kmeans(path: Path, marker: Path) -> Path:
    """A ``kmeans_*.pt``-looking torch file whose pickle would run ``os.system``."""
    torch.save({"alice": {"n_features_in_": 4, "_n_threads": 1, "cluster_centers_": _Exploit(marker)}}, path)
    return path
