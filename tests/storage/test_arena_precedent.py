"""HeadyRisk's precedent and HeadyBattle's memory, through the arena controller, on a real
PostgreSQL + pgvector (see conftest.py). No Kubernetes: the controller runs without a client.

Worked example (the seeds' strategic risk, weights 0.4 alignment, 0.35 reversibility, 0.25
novelty, novelty lowered by a precedent p as novelty x (1 - p)):
alignment 1, reversibility 1, novelty 0.7 -> 0.4 + 0.35 + 0.25 x 0.7 = 0.925 without a
precedent; a past session on the same repos and services (similarity 1.0) -> 0.75.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from heady_operator.arena import ArenaController, operation_text
from heady_operator.config import Settings
from heady_operator.metrics import REGISTRY
from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.planning.battle import BattleContext, Turn
from heady_operator.storage.embedder import HashingEmbedder
from heady_operator.storage.resilient import ResilientMemory

pytestmark = pytest.mark.postgres
DIMENSIONS = 64
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STRATEGIC = {"alignment": 1, "reversibility": 1, "novelty": 0.7}


def session(name: str, repos: list[str], services: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "ArenaSession",
        "metadata": {
            "name": name,
            "namespace": "arena",
            "generation": 1,
            "creationTimestamp": "2026-11-29T11:00:00Z",
        },
        "spec": {
            "repos": [{"name": r} for r in repos],
            "services": services,
            "battleDepth": 2,
            "risk": {"strategic": STRATEGIC},
        },
    }


@pytest.fixture
async def arena(dsn: str) -> AsyncIterator[ArenaController]:
    controller = ArenaController(Settings(), None, clock=lambda: NOW)
    memory = ResilientMemory.for_dsn(dsn, DIMENSIONS, backoff_initial=0.05, backoff_max=0.2)
    assert await memory.start()
    controller.memory = memory
    controller.embedder = HashingEmbedder(DIMENSIONS)
    yield controller
    await memory.close()


def strategic(arena: ArenaController, name: str) -> tuple[float, float | None]:
    risk = arena.sessions[("arena", name)].status["risk"]
    return risk["strategic"], risk.get("precedent")


async def test_a_past_session_on_the_same_work_lowers_novelty(arena: ArenaController, dsn: str) -> None:
    arena.on_session("ADDED", session("first", ["shop", "payments"], ["checkout"]))
    await arena.reconcile()
    # Nothing in memory yet: a precedent of 0 (looked up, none found), novelty in full.
    assert strategic(arena, "first") == (0.925, 0.0)

    arena.on_session("ADDED", session("again", ["shop", "payments"], ["checkout"]))
    arena.on_session("ADDED", session("other", ["search"], ["index"]))
    await arena.reconcile()
    assert strategic(arena, "again") == (0.75, 1.0)  # 0.4 + 0.35 + 0.25 x 0.7 x (1 - 1.0)
    assert strategic(arena, "other") == (0.925, 0.0)  # nothing at 0.8 or more

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT entity_type, count(*) AS n FROM arena_embeddings WHERE session = 'arena/first' "
            "GROUP BY entity_type ORDER BY entity_type"
        )
    finally:
        await conn.close()
    # The session's work (what precedents are found by) and its two battle questions.
    assert [(r["entity_type"], r["n"]) for r in rows] == [("battle_question", 2), ("session", 1)]


async def test_memory_down_leaves_the_precedent_unknown(arena: ArenaController, postgres: Any) -> None:
    arena.on_session("ADDED", session("first", ["shop"], ["checkout"]))
    await arena.reconcile()
    assert REGISTRY.get_sample_value("heady_memory_available") == 1
    postgres.stop()
    try:
        arena.on_session("ADDED", session("during", ["shop"], ["checkout"]))
        await arena.reconcile()
        # The outage fallback: no precedent, novelty counts in full, the session still runs.
        assert strategic(arena, "during") == (0.925, None)
        assert arena.memory is not None and not arena.memory.available
        conditions = {
            c["type"]: c["status"] for c in arena.sessions[("arena", "during")].status["conditions"]
        }
        assert conditions["Admitted"] == "True"
        assert conditions["MemoryAvailable"] == "False"
        assert REGISTRY.get_sample_value("heady_memory_available") == 0
    finally:
        postgres.start()


def test_operation_text_ignores_the_name() -> None:
    a = ArenaSessionSpec.model_validate(session("a", ["shop"], ["checkout"])["spec"])
    assert operation_text(a) == "arena session on repos shop@main; services checkout"


class Answering:
    """Answers every question about the checkout; masters the topic at depth 2."""

    name = "answering"

    def __init__(self) -> None:
        self.similar: list[tuple[str, ...]] = []

    async def turn(self, depth: int, context: BattleContext) -> Turn:
        self.similar.append(context.similar)
        return Turn(
            f"Q{depth}?", answer=f"the checkout canary covers payments, round {depth}", mastery=depth == 2
        )

    async def synthesize(self, context: BattleContext) -> str:
        return "synthesis"


async def test_battle_answers_are_stored_and_found_again(arena: ArenaController, dsn: str) -> None:
    generator = Answering()
    arena.questions = generator
    body = session("battle", ["shop"], ["checkout"])
    body["spec"]["battleDepth"] = 5  # type: ignore[index]
    arena.on_session("ADDED", body)
    await arena.reconcile()
    battle = arena.sessions[("arena", "battle")].status["battle"]
    # Mastery at depth 2 ends the battle before the depth of 5.
    assert [r["depth"] for r in battle["rounds"]] == [1, 2]
    assert battle["stopped"] == "Mastery"
    assert battle["synthesis"]["confidence"] == 1.0
    # Round 2 looked up round 1's answer (similarity >= 0.7 in pgvector) and found it.
    assert generator.similar[0] == ()
    assert "the checkout canary covers payments, round 1" in generator.similar[1]
    conn = await asyncpg.connect(dsn)
    try:
        answers = await conn.fetch(
            "SELECT entity_id, content FROM arena_embeddings "
            "WHERE session = 'arena/battle' AND entity_type = 'battle_answer' ORDER BY entity_id"
        )
    finally:
        await conn.close()
    assert [(r["entity_id"], r["content"]) for r in answers] == [
        ("1", "the checkout canary covers payments, round 1"),
        ("2", "the checkout canary covers payments, round 2"),
    ]
