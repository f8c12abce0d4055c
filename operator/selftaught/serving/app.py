"""The HTTP shell: aiohttp routes around one loaded :class:`~selftaught.engines.base.Engine`.

Routes (the subset of vLLM's OpenAI server a judge's clients call):

* ``GET /health``: 200 once the model is loaded (the server binds only after loading, so a
  readiness probe never sees a half-started judge).
* ``GET /v1/models``: the served model's id and its artifact URI.
* ``POST /v1/chat/completions``: ``n`` samples of the judge's reply.

Generation is CPU/GPU-bound and the engine is not thread-safe, so requests queue on one lock and
run in a worker thread: the event loop keeps answering ``/health`` while a judgment is written.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from selftaught.engines.base import Engine
from selftaught.serving.protocol import (
    RequestError,
    completion_body,
    models_body,
    parse_request,
)


@dataclass
class ServedModel:
    """The loaded judge and how clients name it."""

    engine: Engine
    #: The ``model`` id clients send (the run's name).
    name: str
    #: Where the weights came from (``file://``, ``s3://``, ``builtin://``), shown by /v1/models.
    uri: str
    #: The judging prompt style of the model directory (:func:`selftaught.prompts.prompt_style`).
    prompt_style: str = "standard"
    created: int = field(default_factory=lambda: int(time.time()))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


MODEL_KEY: web.AppKey[ServedModel] = web.AppKey("model", ServedModel)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "model": request.app[MODEL_KEY].name})


async def models(request: web.Request) -> web.Response:
    served = request.app[MODEL_KEY]
    return web.json_response(
        models_body(
            served=served.name,
            root=served.uri,
            created=served.created,
            prompt_style=served.prompt_style,
        )
    )


async def chat_completions(request: web.Request) -> web.Response:
    served = request.app[MODEL_KEY]
    try:
        try:
            payload = await request.json()
        except json.JSONDecodeError as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from None
        chat = parse_request(payload, served=served.name)
        async with served.lock:
            body = await asyncio.to_thread(_complete, served, chat)
    except RequestError as error:
        return web.json_response(error.body(), status=error.status)
    return web.json_response(body)


def _complete(served: ServedModel, chat: Any) -> dict[str, Any]:
    """One blocking generation (in a worker thread, under the model's lock)."""
    conversation = chat.conversation()
    engine = served.engine
    seed = chat.seed if chat.seed is not None else random.randrange(2**31)
    prompt_tokens = engine.prompt_lengths([conversation])[0]
    budget = chat.new_tokens
    if chat.max_tokens is None and chat.max_completion_tokens is None and engine.context_length:
        # No limit asked: what the context leaves, as vLLM does (capped at the default).
        budget = max(1, min(budget, engine.context_length - prompt_tokens))
    samples = engine.generate(
        [conversation],
        n=chat.n,
        temperature=chat.temperature,
        top_p=chat.top_p,
        max_new_tokens=budget,
        seed=seed,
    )[0]
    if not samples:
        raise RequestError(
            f"the prompt ({prompt_tokens} tokens) plus max_tokens ({budget}) exceeds the "
            f"model's context of {engine.context_length} tokens",
            param="messages",
            code="context_length_exceeded",
        )
    generated = int(getattr(engine, "last_generated_tokens", 0))
    return completion_body(
        served=served.name, texts=samples, prompt_tokens=prompt_tokens, completion_tokens=generated
    )


def build_app(served: ServedModel) -> web.Application:
    app = web.Application()
    app[MODEL_KEY] = served
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``port`` 0 lets the kernel pick a free one (read it back after).

    It listens at once, so a client that connects as soon as the address is printed waits in
    the backlog for aiohttp's loop instead of being refused.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def run_forever(served: ServedModel, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp's own signal handling and graceful shutdown)."""
    web.run_app(build_app(served), sock=sock, print=None, access_log=None)
