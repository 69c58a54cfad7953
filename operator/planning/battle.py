"""HeadyBattle: a Socratic review of an arena session in up to seven rounds, then a synthesis.

The battle goes deeper until the answerer shows mastery (a `Turn` with `mastery`), or the
session's battleDepth (at most the seeds' 7) is reached, or the seeds' 10 turns are used (a
turn is one question put, including a question asked again after an empty answer, and the
synthesis). Before each round it looks up similar concepts in memory (the seeds' 0.7) for the
previous answer (or the topic), hands them to the generator, and stores each played round,
question and answer, in memory (`BattleMemory`; none: no lookup, nothing stored).

Each round asks the seed's question for its depth (assumptions, how do you know, evidence,
implications, principles, alternatives, synthesis). Who asks, and whether anyone answers, is a
`QuestionGenerator`:

- `TemplateQuestionGenerator` (the default) fills the seed's templates from the session (topic,
  repos, services, risk). It is deterministic, needs no model and answers nothing: its rounds
  carry no answer and the synthesis says so, with confidence 0.
- Anything else that implements the protocol, e.g. `heady_operator.storage.llm.HttpQuestionGenerator`,
  which asks an OpenAI-compatible chat endpoint to pose and answer the questions. It lives
  under storage/ because it does I/O; this module stays pure (no network, no clock).

A round's risk is the score of the risk dimension its question probes (`ROUND_FOCUS`), so a
round's record says how much is at stake in the thing it questioned.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from heady_operator.models.arena import MAX_BATTLE_DEPTH
from heady_operator.planning.risk import RiskAssessment

# The seed's templates, one per depth; depth 7 asks for the synthesis.
QUESTION_TEMPLATES: dict[int, str] = {
    1: "What assumptions underlie your statement about {context}?",
    2: "How do you know that {assumption} is true?",
    3: "What evidence supports {claim}?",
    4: "What are the implications if {implication} is false?",
    5: "How does {concept} relate to broader principles?",
    6: "What alternative perspectives exist on {topic}?",
    7: "Synthesize: What deeper truth emerges from our discussion?",
}

# Which risk score a round's question puts at stake: assumptions and alternatives concern the
# session as a whole, "how do you know" its technical footing, evidence its operational record,
# implications and principles its strategic direction.
ROUND_FOCUS: dict[int, str] = {
    1: "overall",
    2: "technical",
    3: "operational",
    4: "strategic",
    5: "strategic",
    6: "overall",
    7: "overall",
}

# Status lives in etcd; keep one battle's record well below the object size limit.
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 1000
MAX_SYNTHESIS_CHARS = 2000
UNANSWERED = "unanswered: no answering model is configured"
# The seeds' dialogue manager: `maxTurns = 10`, the synthesis included.
MAX_TURNS = 10
# The seeds' findSimilarConcepts(sessionId, context, 0.7), and how many a round keeps.
SIMILAR_THRESHOLD = 0.7
SIMILAR_KEPT = 3
MAX_SIMILAR_CHARS = 200


class Stop(StrEnum):
    """Why the battle stopped going deeper."""

    MASTERY = "Mastery"
    DEPTH = "DepthReached"
    TURNS = "TurnsUsed"


@dataclass(frozen=True)
class BattleRound:
    depth: int
    question: str
    answer: str | None
    focus: str
    risk: float
    # Similar concepts memory offered for this round (best first, clipped).
    similar: tuple[str, ...] = ()
    mastery: bool = False

    def to_status(self) -> dict[str, object]:
        status: dict[str, object] = {
            "depth": self.depth,
            "question": self.question,
            "answer": self.answer if self.answer is not None else UNANSWERED,
            "answered": self.answer is not None,
            "focus": self.focus,
            "risk": round(self.risk, 4),
        }
        if self.similar:
            status["similar"] = list(self.similar)
        if self.mastery:
            status["mastery"] = True
        return status


@dataclass(frozen=True)
class BattleContext:
    """What a generator may use to pose (and answer) a round's question."""

    topic: str
    repos: tuple[str, ...]
    services: tuple[str, ...] = ()
    risk: RiskAssessment | None = None
    # Snippets of similar past content from memory, best first; may be empty.
    similar: tuple[str, ...] = ()
    rounds: tuple[BattleRound, ...] = ()


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str | None = None
    # The answerer's judgement that the concept is mastered (the seeds' detectConceptualMastery);
    # only an answered turn can show mastery. The battle then goes straight to the synthesis.
    mastery: bool = False


class BattleMemory(Protocol):
    """Where a battle looks up similar concepts and keeps its rounds (I/O lives in the caller)."""

    async def similar(self, text: str) -> tuple[str, ...]:
        """Contents similar to text at SIMILAR_THRESHOLD or more, most similar first."""
        ...

    async def remember(self, played: BattleRound) -> None: ...


class QuestionGenerator(Protocol):
    """Poses the question of a round (and may answer it), then writes the synthesis."""

    @property
    def name(self) -> str: ...

    async def turn(self, depth: int, context: BattleContext) -> Turn: ...

    async def synthesize(self, context: BattleContext) -> str: ...


@dataclass(frozen=True)
class Synthesis:
    summary: str
    insights: tuple[str, ...]
    recommendations: tuple[str, ...]
    # Share of rounds that got an answer: a synthesis of unanswered questions is no evidence.
    confidence: float

    def to_status(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "insights": list(self.insights),
            "recommendations": list(self.recommendations),
            "confidence": round(self.confidence, 4),
        }


@dataclass(frozen=True)
class BattleRecord:
    topic: str
    depth: int
    generator: str
    rounds: tuple[BattleRound, ...]
    synthesis: Synthesis
    turns: int = 0
    stopped: Stop = Stop.DEPTH

    def to_status(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "depth": self.depth,
            "generator": self.generator,
            "turns": self.turns,
            "stopped": self.stopped.value,
            "rounds": [r.to_status() for r in self.rounds],
            "synthesis": self.synthesis.to_status(),
        }


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listing(items: tuple[str, ...], empty: str) -> str:
    if not items:
        return empty
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def template_slots(context: BattleContext) -> dict[str, str]:
    """Values for the template placeholders, taken from the session alone."""
    repos = _listing(context.repos, "its repositories")
    services = _listing(context.services, "the services it uses")
    # Quoted so the seed's "How do you know that {assumption} is true?" reads as a sentence.
    unharmed = f"'nothing breaks in {services} during the session'"
    if context.risk is not None:
        dimension, score = context.risk.highest
        assumption = f"'a {dimension} risk of {score:.2f} is acceptable'"
        concept = f"the {dimension} risk of {context.topic}"
        mitigations = context.risk.mitigations
        implication = (
            f"'{mitigations[0].action.replace('_', ' ')} is enough of a safeguard'"
            if mitigations
            else unharmed
        )
    else:
        assumption = f"'{context.topic} is ready to run'"
        concept = context.topic
        implication = unharmed
    return {
        "context": context.topic,
        "topic": context.topic,
        "assumption": assumption,
        "claim": f"the claim that {context.topic} can change {repos} without breaking {services}",
        "implication": implication,
        "concept": concept,
    }


class TemplateQuestionGenerator:
    """The seed's templates filled from the session; deterministic, asks but never answers."""

    @property
    def name(self) -> str:
        return "template"

    async def turn(self, depth: int, context: BattleContext) -> Turn:
        template = QUESTION_TEMPLATES.get(depth, QUESTION_TEMPLATES[MAX_BATTLE_DEPTH])
        return Turn(question=template.format(**template_slots(context)))

    async def synthesize(self, context: BattleContext) -> str:
        answered = sum(1 for r in context.rounds if r.answer is not None)
        text = f"HeadyBattle on {context.topic}: {len(context.rounds)} rounds, {answered} answered."
        if context.risk is not None:
            dimension, score = context.risk.highest
            actions = ", ".join(m.action for m in context.risk.mitigations) or "none"
            text += (
                f" Overall risk {context.risk.overall:.2f} ({context.risk.level.value}),"
                f" highest {dimension} {score:.2f}; mitigations: {actions}."
            )
        if answered < len(context.rounds):
            text += " Open questions remain; plug in an answering model to close them."
        return text


def _round_risk(risk: RiskAssessment | None, focus: str) -> float:
    return risk.score(focus) if risk is not None else 0.0


async def run_battle(
    topic: str,
    repos: tuple[str, ...] | list[str],
    depth: int,
    generator: QuestionGenerator,
    risk: RiskAssessment | None = None,
    *,
    services: tuple[str, ...] | list[str] = (),
    similar: tuple[str, ...] | list[str] = (),
    memory: BattleMemory | None = None,
    max_turns: int = MAX_TURNS,
) -> BattleRecord:
    """Go deeper round by round (each sees the rounds before it) until mastery, `depth` (1..7)
    or `max_turns`, then synthesize.

    An empty answer from a generator that has answered before is asked once more at the same
    depth (it counts as a turn); a generator that never answers (the templates) is not re-asked.
    """
    if not 1 <= depth <= MAX_BATTLE_DEPTH:
        raise ValueError(f"battle depth must be within 1..{MAX_BATTLE_DEPTH}, got {depth}")
    if max_turns < 2:
        raise ValueError(f"a battle needs at least 2 turns (a question and the synthesis), got {max_turns}")
    context = BattleContext(
        topic=topic,
        repos=tuple(repos),
        services=tuple(services),
        risk=risk,
        similar=tuple(similar),
    )
    turns, level, retried, stopped = 0, 1, False, Stop.DEPTH
    while level <= depth:
        if turns >= max_turns - 1:  # the last turn is the synthesis
            stopped = Stop.TURNS
            break
        previous = next((r.answer for r in reversed(context.rounds) if r.answer), None)
        found = await memory.similar(previous or topic) if memory is not None else ()
        kept = tuple(_clip(text, MAX_SIMILAR_CHARS) for text in found[:SIMILAR_KEPT])
        turn = await generator.turn(level, replace(context, similar=kept + context.similar))
        turns += 1
        answer = _clip(turn.answer, MAX_ANSWER_CHARS) if turn.answer and turn.answer.strip() else None
        if answer is None and not retried and any(r.answer for r in context.rounds):
            retried = True
            continue
        retried = False
        focus = ROUND_FOCUS[level]
        played = BattleRound(
            depth=level,
            question=_clip(turn.question, MAX_QUESTION_CHARS),
            answer=answer,
            focus=focus,
            risk=_round_risk(risk, focus),
            similar=kept,
            mastery=turn.mastery and answer is not None,
        )
        context = replace(context, rounds=(*context.rounds, played))
        if memory is not None:
            await memory.remember(played)
        level += 1
        if played.mastery:
            stopped = Stop.MASTERY
            break
    summary = _clip(await generator.synthesize(context), MAX_SYNTHESIS_CHARS)
    turns += 1
    answered = [r for r in context.rounds if r.answer is not None]
    recommendations = (
        tuple(m.description for m in risk.mitigations) if risk is not None and risk.mitigations else ()
    )
    return BattleRecord(
        topic=topic,
        depth=depth,
        generator=generator.name,
        rounds=context.rounds,
        synthesis=Synthesis(
            summary=summary,
            insights=tuple(f"depth {r.depth} ({r.focus}): {r.answer}" for r in answered),
            recommendations=recommendations,
            confidence=len(answered) / len(context.rounds) if context.rounds else 0.0,
        ),
        turns=turns,
        stopped=stopped,
    )
