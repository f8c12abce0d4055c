"""The OpenAI chat-completions contract, as far as a judge needs it. Pure: no I/O.

Clients written for OpenAI's API (its Python client, LangChain, curl scripts) send the same JSON
to any compatible server (vLLM's ``vllm serve`` included), so the local server and the one the
operator deploys answer the same requests. Only what a judge uses is accepted; a field we do not
honour (``tools``, ``logprobs``) is ignored rather than refused, as vLLM does, but every field we
do honour is range-checked so a bad request gets a 400 naming it instead of a stack trace.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Tokens generated when a request names no ``max_tokens``: a judgment with its reasoning.
DEFAULT_MAX_TOKENS = 256
#: The most completions one request may ask for (each costs a full generation).
MAX_CHOICES = 16


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``; defaults as in OpenAI's API (temperature 1, top_p 1)."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None

    @property
    def new_tokens(self) -> int:
        """The generation budget: ``max_completion_tokens`` (newer clients) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS

    def conversation(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


class RequestError(ValueError):
    """A request the server refuses, with the HTTP status and OpenAI's error fields."""

    def __init__(
        self, message: str, *, status: int = 400, kind: str = "invalid_request_error",
        param: str | None = None, code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape, which its clients turn into typed exceptions."""
        return {
            "error": {
                "message": str(self),
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def parse_request(payload: object, *, served: str) -> ChatRequest:
    """A validated request for the model ``served``; :class:`RequestError` names the bad field."""
    if not isinstance(payload, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        request = ChatRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise RequestError(f"{field}: {first['msg']}", param=field) from None
    if request.model != served:
        raise RequestError(
            f"the model '{request.model}' does not exist; this server serves '{served}'",
            status=404,
            param="model",
            code="model_not_found",
        )
    return request


def models_body(*, served: str, root: str, created: int, prompt_style: str) -> dict[str, Any]:
    """``GET /v1/models``: the one model this server holds; ``root`` is its artifact URI.

    ``prompt_style`` is our extension (OpenAI clients ignore unknown fields): the judging prompt
    the model was trained on, so ``kubectl selftaught judge`` phrases its question the same way.
    """
    return {
        "object": "list",
        "data": [
            {"id": served, "object": "model", "created": created, "owned_by": "selftaught",
             "root": root, "prompt_style": prompt_style}
        ],
    }  # fmt: skip


def completion_body(
    *, served: str, texts: list[str], prompt_tokens: int, completion_tokens: int,
    now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``chat.completion`` object for the generated ``texts`` (one choice each).

    ``finish_reason`` is always ``stop``: the engine interface does not report whether a sample
    hit ``max_tokens``, and a wrong ``length`` would be worse than the common default.
    """
    choices = [
        {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        for index, text in enumerate(texts)
    ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time() if now is None else now),
        "model": served,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
