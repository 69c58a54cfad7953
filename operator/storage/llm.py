"""HeadyBattle rounds played by a language model behind an OpenAI-compatible chat endpoint.

A sketch that works with any ``POST {base_url}/chat/completions`` (OpenAI, vLLM, Ollama's
``/v1``, llama.cpp server, LiteLLM). To plug one in, build the generator at startup and hand
it to `run_battle` in place of the template generator::

    generator = HttpQuestionGenerator("http://vllm.models:8000/v1", "qwen2.5-7b-instruct")
    record = await run_battle(topic, repos, depth, generator, risk)
    await generator.close()

Each round sends the session's facts, the earlier rounds and the seed's question for the
round's depth, and asks the model to sharpen the question to this session and answer it as
the session's proposer would, replying with JSON ``{"question": ..., "answer": ...}``. A reply
that is not that JSON is kept as the answer under the seed's question, so a chatty model
degrades the record instead of failing the battle. The operator treats the answers as
opinions to record, never as decisions.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from heady_operator.planning.battle import (
    QUESTION_TEMPLATES,
    BattleContext,
    TemplateQuestionGenerator,
    Turn,
)

SYSTEM_PROMPT = (
    "You are HeadySoul, a Socratic reviewer of engineering experiments. You question "
    "assumptions, ask for evidence, look for logical fallacies and weigh alternatives. Be "
    "concrete and brief."
)


class ChatError(RuntimeError):
    """The chat endpoint failed or answered without a message."""


def describe(context: BattleContext) -> str:
    """The session as the model sees it."""
    lines = [f"Topic: {context.topic}", f"Repositories: {', '.join(context.repos) or 'none'}"]
    if context.services:
        lines.append(f"Services: {', '.join(context.services)}")
    if context.risk is not None:
        risk = context.risk
        lines.append(
            f"Risk: overall {risk.overall:.2f} ({risk.level.value}); technical {risk.technical:.2f}, "
            f"operational {risk.operational:.2f}, strategic {risk.strategic:.2f}"
        )
        if risk.mitigations:
            lines.append("Mitigations: " + "; ".join(m.description for m in risk.mitigations))
    if context.similar:
        lines.append("Similar past notes: " + " | ".join(context.similar[:3]))
    for played in context.rounds:
        lines.append(f"Round {played.depth} question: {played.question}")
        lines.append(f"Round {played.depth} answer: {played.answer or '(none)'}")
    return "\n".join(lines)


class HttpQuestionGenerator:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 0.2,
        max_tokens: int = 400,
        timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._templates = TemplateQuestionGenerator()

    @property
    def name(self) -> str:
        return f"chat:{self._model}"

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def turn(self, depth: int, context: BattleContext) -> Turn:
        seed_question = (await self._templates.turn(depth, context)).question
        prompt = (
            f"{describe(context)}\n\nRound {depth} of at most {len(QUESTION_TEMPLATES)}. The question "
            f"for this depth is: {seed_question}\nSharpen it to this session, then answer it as "
            "the session's proposer would, in at most three sentences. Reply with JSON only: "
            '{"question": "...", "answer": "..."}'
        )
        reply = await self._chat(prompt)
        try:
            parsed = json.loads(_strip_fence(reply))
            question = str(parsed.get("question") or seed_question)
            answer = parsed.get("answer")
            return Turn(question=question, answer=str(answer) if answer else None)
        except (ValueError, AttributeError):
            return Turn(question=seed_question, answer=reply or None)

    async def synthesize(self, context: BattleContext) -> str:
        prompt = (
            f"{describe(context)}\n\n{QUESTION_TEMPLATES[len(QUESTION_TEMPLATES)]} Answer in at most "
            "five sentences: what holds up, what does not, and what to do next."
        )
        return await self._chat(prompt)

    async def _chat(self, prompt: str) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
        }
        async with self._session.post(
            self._url, json=body, headers=self._headers, timeout=self._timeout
        ) as response:
            if response.status != 200:
                detail = (await response.text())[:300]
                raise ChatError(f"{self._url} answered {response.status}: {detail}")
            payload = await response.json()
        try:
            return str(payload["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError) as exc:
            raise ChatError(f"{self._url} answered without a message: {exc!r}") from exc


def _strip_fence(text: str) -> str:
    """Models like to wrap JSON in a Markdown code fence."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()
