"""``kubectl selftaught judge``: ask a served judge which of two answers is better.

The judge speaks the OpenAI chat API (``selftaught serve`` locally, ``vllm serve`` on a
cluster). The question is phrased with the project's own judging prompt in the style the model
was trained on (the server's ``prompt_style`` extension; ``standard`` when it names none, as
vLLM does), and the verdict is read with the same parser the evaluate stage uses. Plain
``urllib`` to ``--url``; without it, the operator's judge server (``spec.serve``) through the
API server's Service proxy (:meth:`selftaught.plugin.kube.Cluster.proxy`), so it works from a
laptop with nothing but a kubeconfig.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selftaught.plugin.requests import PluginError
from selftaught.prompts import Style, judge_prompt, parse_verdict

#: Seconds to wait for a judgment (a 70B judge writing its reasoning takes a while).
TIMEOUT = 300.0


@dataclass(frozen=True)
class Ruling:
    """The judge's texts and the majority verdict (None when no sample named one)."""

    judgments: list[str]
    verdict: str | None


def _call(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = error.reason
        raise PluginError(f"the judge at {url} answered {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise PluginError(f"cannot reach the judge at {url}: {error}") from None


#: How a request reaches the judge: (path under the base, JSON body or None for a GET) -> JSON.
Transport = Callable[[str, dict[str, Any] | None], Any]


def direct(base: str) -> Transport:
    """Plain HTTP to ``base`` (``--url``: a laptop's ``selftaught serve``, a port-forward)."""
    base = base.rstrip("/")
    return lambda path, body: _call(f"{base}{path}", body)


def ask(
    base: str, *, model: str, question: str, answer_a: str, answer_b: str, samples: int,
    max_tokens: int | None = None, transport: Transport | None = None,
) -> Ruling:  # fmt: skip
    """``samples`` judgments (greedy for one, temperature 0.7 for several) and their majority.

    ``transport``: how requests travel (default: plain HTTP to ``base``; the plugin passes the
    API server's Service proxy for an in-cluster judge); ``base`` then only names it.
    """
    if not 1 <= samples <= 16:
        raise PluginError(f"--samples {samples} is out of range (1..16)")
    base = base.rstrip("/")
    call = transport or direct(base)
    cards = call("/v1/models", None).get("data", [])
    card = next((c for c in cards if c.get("id") == model), None)
    if card is None:
        served = ", ".join(str(c.get("id")) for c in cards) or "none"
        raise PluginError(f"the judge at {base} does not serve '{model}' (it serves: {served})")
    style: Style = "compact" if card.get("prompt_style") == "compact" else "standard"
    body: dict[str, Any] = {
        "model": model,
        "messages": judge_prompt(style, question, answer_a, answer_b),
        "n": samples,
        "temperature": 0.0 if samples == 1 else 0.7,
    }
    if max_tokens is not None:  # else the server's own default (what the context leaves)
        body["max_tokens"] = max_tokens
    answer = call("/v1/chat/completions", body)
    texts = [str(choice["message"]["content"]) for choice in answer["choices"]]
    votes = Counter(v for v in map(parse_verdict, texts) if v is not None)
    top = votes.most_common()
    verdict = top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else None
    return Ruling(texts, verdict)
