"""HeadyBattle Socratic rounds (heady_operator.planning.battle)."""

from __future__ import annotations

import pytest

from heady_operator.models.arena import RiskInputs
from heady_operator.planning.battle import (
    MAX_ANSWER_CHARS,
    MAX_TURNS,
    QUESTION_TEMPLATES,
    SIMILAR_THRESHOLD,
    UNANSWERED,
    BattleContext,
    BattleRound,
    Stop,
    TemplateQuestionGenerator,
    Turn,
    run_battle,
)
from heady_operator.planning.risk import assess_risk

REPOS = ("HeadySystems", "HeadyConnection", "HeadyMe")
# technical .56 (highest), operational .31, strategic 0 -> overall .4 x .56 + .35 x .31 = 0.3325
RISK = assess_risk(
    RiskInputs.model_validate(
        {
            "technical": {"complexity": 0.8, "dependencies": 0.6, "scalability": 0.5, "security": 0.2},
            "operational": {"resourceUtilization": 0.5, "errorRate": 0.2, "latency": 0.4, "throughput": 0.1},
        }
    )
)


def test_the_seed_templates_are_kept_verbatim() -> None:
    assert QUESTION_TEMPLATES[1] == "What assumptions underlie your statement about {context}?"
    assert QUESTION_TEMPLATES[7] == "Synthesize: What deeper truth emerges from our discussion?"
    assert sorted(QUESTION_TEMPLATES) == list(range(1, 8))


async def test_three_rounds_from_templates() -> None:
    record = await run_battle("ArenaSession team/refactor", REPOS, 3, TemplateQuestionGenerator(), RISK)
    assert [r.question for r in record.rounds] == [
        "What assumptions underlie your statement about ArenaSession team/refactor?",
        "How do you know that 'a technical risk of 0.56 is acceptable' is true?",
        "What evidence supports the claim that ArenaSession team/refactor can change HeadySystems, "
        "HeadyConnection and HeadyMe without breaking the services it uses?",
    ]
    assert [(r.depth, r.focus) for r in record.rounds] == [
        (1, "overall"),
        (2, "technical"),
        (3, "operational"),
    ]
    assert [r.risk for r in record.rounds] == pytest.approx([0.3325, 0.56, 0.31])
    assert all(r.answer is None for r in record.rounds)
    assert record.generator == "template"
    assert record.synthesis.confidence == 0.0
    assert record.synthesis.summary == (
        "HeadyBattle on ArenaSession team/refactor: 3 rounds, 0 answered. Overall risk 0.33 (medium), "
        "highest technical 0.56; mitigations: none. Open questions remain; plug in an answering "
        "model to close them."
    )


async def test_seven_rounds_end_in_the_synthesis_question() -> None:
    record = await run_battle("t", REPOS[:1], 7, TemplateQuestionGenerator(), RISK, services=["api", "web"])
    assert len(record.rounds) == 7
    assert (
        record.rounds[3].question
        == "What are the implications if 'nothing breaks in api and web during the session' is false?"
    )
    assert record.rounds[4].question == "How does the technical risk of t relate to broader principles?"
    assert record.rounds[5].question == "What alternative perspectives exist on t?"
    assert record.rounds[6].question == QUESTION_TEMPLATES[7]


async def test_the_first_mitigation_becomes_the_implication_to_question() -> None:
    risky = assess_risk(
        RiskInputs.model_validate({"technical": {"complexity": 1, "dependencies": 1, "scalability": 1}})
    )
    record = await run_battle("t", REPOS, 4, TemplateQuestionGenerator(), risky)
    assert record.rounds[3].question == (
        "What are the implications if 'incremental deployment is enough of a safeguard' is false?"
    )
    assert record.synthesis.recommendations == ("Deploy operation incrementally with canary releases",)


async def test_without_a_risk_assessment() -> None:
    record = await run_battle("t", (), 2, TemplateQuestionGenerator())
    assert record.rounds[1].question == "How do you know that 't is ready to run' is true?"
    assert [r.risk for r in record.rounds] == [0.0, 0.0]
    assert record.synthesis.summary.startswith("HeadyBattle on t: 2 rounds, 0 answered.")


@pytest.mark.parametrize("depth", [0, 8])
async def test_depth_out_of_range(depth: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.7"):
        await run_battle("t", REPOS, depth, TemplateQuestionGenerator())


class Answering:
    """A generator that answers every question and checks it sees the rounds before."""

    name = "answering"

    def __init__(self, answer: str = "Because the canary passed.") -> None:
        self.answer = answer
        self.seen: list[int] = []

    async def turn(self, depth: int, context: BattleContext) -> Turn:
        assert [r.depth for r in context.rounds] == list(range(1, depth))
        self.seen.append(depth)
        return Turn(question=f"Q{depth} about {context.topic}?", answer=self.answer if depth != 2 else "  ")

    async def synthesize(self, context: BattleContext) -> str:
        return f"{len(context.rounds)} rounds: " + " / ".join(r.answer or "-" for r in context.rounds)


async def test_a_pluggable_generator_answers() -> None:
    generator = Answering()
    record = await run_battle("t", REPOS, 3, generator, RISK)
    # Depth 2's empty answer is asked once more (one more turn), then recorded as unanswered.
    assert generator.seen == [1, 2, 2, 3]
    assert record.turns == 5  # four questions and the synthesis
    assert record.stopped is Stop.DEPTH
    assert [r.answer for r in record.rounds] == [
        "Because the canary passed.",
        None,
        "Because the canary passed.",
    ]
    assert record.synthesis.confidence == pytest.approx(2 / 3)
    assert record.synthesis.insights == (
        "depth 1 (overall): Because the canary passed.",
        "depth 3 (operational): Because the canary passed.",
    )
    assert record.synthesis.summary == "3 rounds: Because the canary passed. / - / Because the canary passed."
    assert record.generator == "answering"


async def test_long_answers_are_clipped_for_the_status() -> None:
    record = await run_battle("t", REPOS, 1, Answering("word " * 1000), RISK)
    answer = record.rounds[0].answer
    assert answer is not None
    assert len(answer) == MAX_ANSWER_CHARS
    assert answer.endswith("…")


async def test_status_shape() -> None:
    status = (await run_battle("t", REPOS, 1, TemplateQuestionGenerator(), RISK)).to_status()
    assert status["depth"] == 1
    assert status["generator"] == "template"
    assert status["turns"] == 2
    assert status["stopped"] == "DepthReached"
    assert status["rounds"] == [
        {
            "depth": 1,
            "question": "What assumptions underlie your statement about t?",
            "answer": UNANSWERED,
            "answered": False,
            "focus": "overall",
            "risk": 0.3325,
        }
    ]
    synthesis = status["synthesis"]
    assert isinstance(synthesis, dict)
    assert set(synthesis) == {"summary", "insights", "recommendations", "confidence"}


# --- until mastery, within the seeds' bounds, with memory ------------------------------------


class Scripted:
    """Answers from a script per depth: (answer or None, mastery)."""

    name = "scripted"

    def __init__(self, script: dict[int, tuple[str | None, bool]]) -> None:
        self.script = script
        self.asked: list[int] = []
        self.similar_seen: list[tuple[str, ...]] = []

    async def turn(self, depth: int, context: BattleContext) -> Turn:
        self.asked.append(depth)
        self.similar_seen.append(context.similar)
        answer, mastery = self.script.get(depth, ("an answer", False))
        return Turn(question=f"Q{depth}?", answer=answer, mastery=mastery)

    async def synthesize(self, context: BattleContext) -> str:
        return "done"


class ListMemory:
    """BattleMemory over a list: similar = stored answers sharing a word with the text."""

    def __init__(self, past: list[str]) -> None:
        self.contents = list(past)
        self.stored: list[BattleRound] = []
        self.queries: list[str] = []

    async def similar(self, text: str) -> tuple[str, ...]:
        self.queries.append(text)
        words = set(text.lower().split())
        return tuple(c for c in self.contents if words & set(c.lower().split()))

    async def remember(self, played: BattleRound) -> None:
        self.stored.append(played)
        if played.answer:
            self.contents.append(played.answer)


async def test_mastery_ends_the_battle_early() -> None:
    generator = Scripted({3: ("the canary covers every path", True)})
    record = await run_battle("t", REPOS, 7, generator, RISK)
    assert generator.asked == [1, 2, 3]
    assert record.stopped is Stop.MASTERY
    assert record.rounds[-1].mastery and record.rounds[-1].to_status()["mastery"] is True
    assert record.turns == 4
    assert record.synthesis.confidence == 1.0  # every round played was answered


async def test_mastery_without_an_answer_does_not_count() -> None:
    generator = Scripted({1: (None, True)})
    record = await run_battle("t", REPOS, 2, generator, RISK)
    assert record.stopped is Stop.DEPTH
    assert not record.rounds[0].mastery


async def test_ten_turns_bound_the_battle() -> None:
    # Every depth after the first is answered only on the second ask: 2 turns per depth. Of the 10
    # turns, one is the synthesis: depths 1..5 take the other 9, and depth 6 is never asked.
    class Hesitant(Scripted):
        async def turn(self, depth: int, context: BattleContext) -> Turn:
            self.asked.append(depth)
            if depth > 1 and self.asked.count(depth) == 1:
                return Turn(question=f"Q{depth}?", answer=None)
            return Turn(question=f"Q{depth}?", answer="yes")

    generator = Hesitant({})
    record = await run_battle("t", REPOS, 7, generator, RISK)
    assert MAX_TURNS == 10
    assert record.turns == MAX_TURNS
    assert record.stopped is Stop.TURNS
    assert generator.asked == [1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [r.depth for r in record.rounds] == [1, 2, 3, 4, 5]


async def test_depth_seven_is_the_deepest() -> None:
    record = await run_battle("t", REPOS, 7, Scripted({}), RISK)
    assert [r.depth for r in record.rounds] == list(range(1, 8))
    assert record.stopped is Stop.DEPTH
    assert record.turns == 8
    with pytest.raises(ValueError, match=r"1\.\.7"):
        await run_battle("t", REPOS, 8, Scripted({}), RISK)


async def test_answers_are_stored_and_similar_concepts_looked_up() -> None:
    memory = ListMemory(["the canary release of checkout went fine", "unrelated note"])
    generator = Scripted({1: ("a canary on checkout", False), 2: ("rollback is one click", False)})
    record = await run_battle("checkout", REPOS, 3, generator, RISK, memory=memory)
    # Round 1 looks up the topic, later rounds the previous answer (the seeds' context).
    assert memory.queries == ["checkout", "a canary on checkout", "rollback is one click"]
    assert generator.similar_seen[0] == ("the canary release of checkout went fine",)
    # Round 2 also finds round 1's answer, stored right after it was given.
    assert "a canary on checkout" in generator.similar_seen[1]
    assert record.rounds[1].similar == generator.similar_seen[1]
    assert [r.answer for r in memory.stored] == ["a canary on checkout", "rollback is one click", "an answer"]
    assert SIMILAR_THRESHOLD == 0.7
