"""Text to vectors for arena memory.

`HashingEmbedder` is the default because it needs nothing: no model download, no GPU, no
network. It is NOT semantic. It hashes words, word pairs and character trigrams into a fixed
number of buckets (feature hashing), so two texts are similar when they share words or
spellings: "pod restart storm" finds "restart storm in pods", but "car" and "automobile" are
unrelated. Good enough to find repeats and near-repeats of earlier sessions; not a
substitute for a language model.

For meaning, plug in a model:

- `HttpEmbedder`: any OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, vLLM, Ollama's
  ``/v1``, Hugging Face text-embeddings-inference, LiteLLM). Set HEADY_EMBEDDING_DIMENSIONS to the
  model's output size (e.g. 1536 for text-embedding-3-small, 384 for all-MiniLM-L6-v2).
- sentence-transformers in-process: wrap ``SentenceTransformer(name).encode(texts,
  normalize_embeddings=True)`` in a class with the `Embedder` shape and run ``encode`` in
  ``asyncio.to_thread`` (it is CPU-bound). It is not a dependency of the operator because it
  pulls in torch and downloads the model on first use; serving it behind an OpenAI-compatible
  endpoint and using `HttpEmbedder` keeps the operator image small.

Changing the embedder changes what vectors mean: embeddings from two embedders must not be
mixed in one table (the dimension check catches only the case where the sizes differ).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp


class Embedder(Protocol):
    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbeddingError(RuntimeError):
    """An embedding endpoint answered, but not with usable vectors."""


_WORD = re.compile(r"\w+")
# Relative weight of each kind of feature; a whole word says more than a pair of words,
# a pair more than a spelling fragment.
WORD_WEIGHT = 1.0
PAIR_WEIGHT = 0.5
TRIGRAM_WEIGHT = 0.5  # shared by all trigrams of one word, so long words do not dominate
_EMPTY_FEATURE = "\x00empty"


class HashingEmbedder:
    """Deterministic feature-hashing embedder (bag of words, word bigrams, char trigrams).

    Same text, same vector, in every process and on every machine (blake2b, not Python's
    salted hash). Vectors are L2-normalised, so cosine similarity is their dot product.
    """

    def __init__(self, dimensions: int = 1536) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dimensions
        for feature, weight in self.features(text):
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            # The top bit picks a sign so colliding features tend to cancel, not pile up.
            sign = 1.0 if digest >> 63 else -1.0
            vector[digest % self._dimensions] += sign * weight
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            # Features that cancel exactly; any fixed unit vector beats a zero vector, whose
            # cosine distance is undefined (NaN) in pgvector.
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]

    @staticmethod
    def features(text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
        if not words:
            return [(_EMPTY_FEATURE, 1.0)]
        out: list[tuple[str, float]] = [(f"w:{w}", WORD_WEIGHT) for w in words]
        out += [(f"p:{a} {b}", PAIR_WEIGHT) for a, b in itertools.pairwise(words)]
        for word in words:
            padded = f"<{word}>"
            trigrams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            out += [(f"c:{t}", TRIGRAM_WEIGHT / len(trigrams)) for t in trigrams]
        return out


class HttpEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``HttpEmbedder("http://tei.models:8080/v1", "BAAI/bge-small-en-v1.5", 384)``; pass
    ``api_key`` for hosted APIs. ``send_dimensions=True`` asks models that can shorten their
    output (OpenAI text-embedding-3-*) for exactly `dimensions`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        dimensions: int,
        *,
        api_key: str | None = None,
        send_dimensions: bool = False,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dimensions = dimensions
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._send_dimensions = send_dimensions
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body: dict[str, Any] = {"model": self._model, "input": list(texts)}
        if self._send_dimensions:
            body["dimensions"] = self._dimensions
        async with self._session.post(
            self._url, json=body, headers=self._headers, timeout=self._timeout
        ) as response:
            if response.status != 200:
                detail = (await response.text())[:300]
                raise EmbeddingError(f"{self._url} answered {response.status}: {detail}")
            payload = await response.json()
        return self._vectors(payload, len(texts))

    def _vectors(self, payload: Any, expected: int) -> list[list[float]]:
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"{self._url} answered without embeddings: {exc!r}") from exc
        if len(vectors) != expected:
            raise EmbeddingError(f"{self._url} returned {len(vectors)} embeddings for {expected} texts")
        for vector in vectors:
            if len(vector) != self._dimensions:
                raise EmbeddingError(
                    f"{self._model} returns {len(vector)} dimensions, configured for {self._dimensions}"
                )
        return vectors
