"""Embedders and the chat question generator; HTTP clients run against a local aiohttp server."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from heady_operator.planning.battle import QUESTION_TEMPLATES, run_battle
from heady_operator.storage.embedder import EmbeddingError, HashingEmbedder, HttpEmbedder
from heady_operator.storage.llm import ChatError, HttpQuestionGenerator


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# --- HashingEmbedder -------------------------------------------------------------------------


async def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(256)
    (a, b) = await embedder.embed(["Pod restart storm in HeadyMe", "Pod restart storm in HeadyMe"])
    assert a == b
    assert len(a) == embedder.dimensions == 256
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0)
    # Stable across processes and machines: the same text always maps to the same buckets.
    assert HashingEmbedder(256).embed_one("canary") == HashingEmbedder(256).embed_one("canary")


async def test_shared_words_and_spellings_make_texts_similar() -> None:
    embedder = HashingEmbedder(1536)
    query = embedder.embed_one("pod restart storm")
    near = embedder.embed_one("restart storm in pods")
    unrelated = embedder.embed_one("quarterly revenue report")
    assert cosine(query, near) > 0.5
    assert abs(cosine(query, unrelated)) < 0.2
    # Case and Unicode compatibility forms do not matter.
    assert embedder.embed_one(
        "\uff30\uff2f\uff24 Restart"
    )  # fullwidth POD == embedder.embed_one("pod restart")


async def test_not_semantic() -> None:
    embedder = HashingEmbedder(1536)
    # Synonyms share no features, so they look unrelated: this is not a language model.
    assert abs(cosine(embedder.embed_one("car"), embedder.embed_one("automobile"))) < 0.2


def test_empty_text_still_has_a_direction() -> None:
    vector = HashingEmbedder(64).embed_one("  ...  ")
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        HashingEmbedder(0)


# --- a local OpenAI-compatible endpoint ------------------------------------------------------

Handler = Callable[[dict[str, Any]], tuple[int, Any]]


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]], dict[str, Handler]]]:
    """A local server; tests set handlers["embeddings"/"chat"] and read the requests seen."""
    seen: list[dict[str, Any]] = []
    handlers: dict[str, Handler] = {}

    def route(name: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            seen.append({"path": request.path, "auth": request.headers.get("Authorization"), "body": body})
            status, payload = handlers[name](body)
            if isinstance(payload, str):
                return web.Response(status=status, text=payload)
            return web.json_response(payload, status=status)

        return handle

    app = web.Application()
    app.router.add_post("/v1/embeddings", route("embeddings"))
    app.router.add_post("/v1/chat/completions", route("chat"))
    server = TestServer(app)
    await server.start_server()
    yield server, seen, handlers
    await server.close()


def base_url(server: TestServer) -> str:
    return str(server.make_url("/v1"))


async def test_http_embedder(endpoint: tuple[TestServer, list[dict[str, Any]], dict[str, Handler]]) -> None:
    server, seen, handlers = endpoint

    def embeddings(body: dict[str, Any]) -> tuple[int, Any]:
        # Out of order on purpose: clients must sort by index.
        data = [{"index": i, "embedding": [float(i)] * 4} for i in range(len(body["input"]))]
        return 200, {"data": list(reversed(data))}

    handlers["embeddings"] = embeddings
    embedder = HttpEmbedder(base_url(server), "bge-small", 4, api_key="k", send_dimensions=True)
    try:
        assert await embedder.embed(["a", "b", "c"]) == [[0.0] * 4, [1.0] * 4, [2.0] * 4]
        assert await embedder.embed([]) == []
        assert seen == [
            {
                "path": "/v1/embeddings",
                "auth": "Bearer k",
                "body": {"model": "bge-small", "input": ["a", "b", "c"], "dimensions": 4},
            }
        ]
        handlers["embeddings"] = lambda body: (200, {"data": [{"index": 0, "embedding": [1.0] * 3}]})
        with pytest.raises(EmbeddingError, match="returns 3 dimensions, configured for 4"):
            await embedder.embed(["a"])
        handlers["embeddings"] = lambda body: (200, {"data": []})
        with pytest.raises(EmbeddingError, match="0 embeddings for 1 texts"):
            await embedder.embed(["a"])
        handlers["embeddings"] = lambda body: (200, {"error": "nope"})
        with pytest.raises(EmbeddingError, match="without embeddings"):
            await embedder.embed(["a"])
        handlers["embeddings"] = lambda body: (503, "overloaded")
        with pytest.raises(EmbeddingError, match="answered 503: overloaded"):
            await embedder.embed(["a"])
    finally:
        await embedder.close()


def chat_reply(content: str) -> tuple[int, Any]:
    return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}


async def test_http_question_generator_plays_a_battle(
    endpoint: tuple[TestServer, list[dict[str, Any]], dict[str, Handler]],
) -> None:
    server, seen, handlers = endpoint
    replies = iter(
        [
            json.dumps({"question": "Which repos share the schema?", "answer": "Only HeadyMe."}),
            '```json\n{"question": "Why is that safe?", "answer": "Migrations are additive."}\n```',
            "Plain prose instead of JSON.",
            "It holds up; ship behind a canary.",
        ]
    )
    handlers["chat"] = lambda body: chat_reply(next(replies))
    generator = HttpQuestionGenerator(base_url(server), "qwen2.5-7b-instruct")
    try:
        record = await run_battle("schema change", ["HeadyMe"], 3, generator)
    finally:
        await generator.close()
    assert record.generator == "chat:qwen2.5-7b-instruct"
    assert [(r.question, r.answer) for r in record.rounds] == [
        ("Which repos share the schema?", "Only HeadyMe."),
        ("Why is that safe?", "Migrations are additive."),
        # Not JSON: the seed's question stands and the reply becomes the answer.
        (
            "What evidence supports the claim that schema change can change HeadyMe without breaking "
            "the services it uses?",
            "Plain prose instead of JSON.",
        ),
    ]
    assert record.synthesis.summary == "It holds up; ship behind a canary."
    assert record.synthesis.confidence == 1.0
    # Each request carries the earlier rounds and the seed question of its depth.
    third = seen[2]["body"]["messages"][1]["content"]
    assert "Round 2 answer: Migrations are additive." in third
    assert "Round 3 of at most 7" in third
    assert QUESTION_TEMPLATES[7] in seen[3]["body"]["messages"][1]["content"]


async def test_http_question_generator_errors(
    endpoint: tuple[TestServer, list[dict[str, Any]], dict[str, Handler]],
) -> None:
    server, _, handlers = endpoint
    generator = HttpQuestionGenerator(base_url(server), "m")
    try:
        handlers["chat"] = lambda body: (500, "boom")
        with pytest.raises(ChatError, match="answered 500: boom"):
            await run_battle("t", ["r"], 1, generator)
        handlers["chat"] = lambda body: (200, {"choices": []})
        with pytest.raises(ChatError, match="without a message"):
            await run_battle("t", ["r"], 1, generator)
    finally:
        await generator.close()
