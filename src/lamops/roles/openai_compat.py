"""The client of any OpenAI-compatible endpoint (GPT-4o, vLLM, Azure, ...) that plays the LLM roles of data
building (`lamops.roles.openai_roles`).

`OpenAIClient` sends one chat completion and returns the first JSON object of the reply. It does its own
retries (exponential backoff with seeded jitter) on connection errors, timeouts, 429 and 5xx, and raises
`LLMError` for everything else; the message names the role, the endpoint and what went wrong, never the key.
One class per role (`openai_roles.py`) holds its prompt and validates the reply with pydantic.

Stages should catch `LLMError` per item and quarantine the item with `err.reason`: a reply that breaks the
contract (not JSON, a missing field, an unknown function) is a property of that item, not of the run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

log = logging.getLogger(__name__)

ErrorReason = Literal[
    "no_key", "unreachable", "timeout", "http_error", "empty_reply", "not_json", "invalid_reply"
]
# 408 and 409 are what OpenAI's own client retries besides 429 and 5xx: transient on every server we know.
_RETRY_STATUS = frozenset({408, 409, 429})


class LLMSettings(BaseModel):
    """Where and how to reach the LLM. The API key never appears here: only the name of its variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        default="https://api.openai.com/v1", description="OpenAI-compatible base URL, usually ending in /v1."
    )
    model: str = Field(default="gpt-4o", description="Model name the server knows.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the API key; null for a server that needs none.",
    )
    timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds one request may take before it is retried."
    )
    max_retries: int = Field(
        default=4, ge=0, description="Retries after the first try (connection, 429, 5xx)."
    )
    backoff_s: float = Field(
        default=1.0, ge=0, description="Delay before the first retry; doubles each retry."
    )
    max_backoff_s: float = Field(
        default=30.0, ge=0, description="Cap on one retry delay (Retry-After included)."
    )
    temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature; 0 for repeatability."
    )
    max_tokens: int | None = Field(
        default=2048, gt=0, description="Cap on reply tokens; null for the default."
    )
    json_mode: bool = Field(
        default=True,
        description="Ask for response_format json_object; dropped by itself when the server answers 400.",
    )
    seed: int = Field(default=0, description="Seed of the retry jitter.")


class LLMError(RuntimeError):
    """The LLM could not give a usable answer. `reason` is a short code for metrics; `field` names the reply
    field that was wrong, when one was."""

    def __init__(
        self,
        role: str,
        endpoint: str,
        reason: ErrorReason,
        detail: str,
        *,
        model: str | None = None,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        self.role = role
        self.endpoint = endpoint
        self.reason = reason
        self.field = field
        self.status = status
        where = f"{endpoint} (model {model})" if model else endpoint
        super().__init__(f"LLM role {role!r} at {where}: {detail}")


# ---- the client ------------------------------------------------------------------------------------------
M = TypeVar("M", bound=BaseModel)


class OpenAIClient:
    """One OpenAI-compatible endpoint, shared by the roles. Thread-safe: stages may call it from a pool."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.endpoint = safe_url(settings.base_url)
        self._key = self._read_key()
        # max_retries=0: the openai client's own retries would hide attempts from our count and our messages.
        self._client = openai.OpenAI(
            base_url=settings.base_url, api_key=self._key, timeout=settings.timeout_s, max_retries=0
        )
        self._json_mode = settings.json_mode
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIClient(endpoint={self.endpoint!r}, model={self.settings.model!r})"

    def complete_json(self, system: str, user: str, *, role: str = "llm") -> dict[str, Any]:
        """The first JSON object of the model's reply to one system + user message."""
        content, finish_reason = self._chat(system, user, role)
        obj = first_json_object(content)
        if obj is None:
            cut = ""
            if finish_reason == "length":
                cut = f" (the reply was cut at max_tokens={self.settings.max_tokens}; raise it)"
            raise self._error(
                role, "not_json", f"the reply holds no JSON object{cut}: {self._preview(content)}"
            )
        return obj

    def complete(self, system: str, user: str, reply: type[M], *, role: str = "llm") -> M:
        """`complete_json` validated as `reply`; a missing or mistyped field raises LLMError naming it."""
        data = self.complete_json(system, user, role=role)
        try:
            return reply.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(reply)"
            if err["type"] == "missing":
                has = f" (it has {sorted(data)})" if len(err["loc"]) == 1 else ""
                what = f"the reply has no field {field!r}{has}"
            else:
                what = f"reply field {field!r}: {err['msg']} (got {self._preview(repr(err['input']), 120)})"
            raise self._error(role, "invalid_reply", what, field=field) from None

    # -- internals -------------------------------------------------------------------------------------
    def _read_key(self) -> str:
        name = self.settings.api_key_env
        if name is None:
            return "EMPTY"  # the openai client insists on a key; a server without auth ignores it
        key = os.environ.get(name, "").strip()
        if not key:
            raise LLMError(
                "llm",
                self.endpoint,
                "no_key",
                f"environment variable {name} is not set; export the API key there (any value for a server "
                "without auth), or set llm.api_key_env to the variable that holds it",
            )
        return key

    def _chat(self, system: str, user: str, role: str) -> tuple[str, str | None]:
        s = self.settings
        tries = s.max_retries + 1
        json_mode = self._json_mode
        attempt = 0
        while True:
            attempt += 1
            kwargs: dict[str, Any] = {
                "model": s.model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "temperature": s.temperature,
            }
            if s.max_tokens is not None:
                kwargs["max_tokens"] = s.max_tokens
            if json_mode:
                kwargs["response_format"] = {"type": "json_object"}
            try:
                response = self._client.chat.completions.create(**kwargs)
            except openai.BadRequestError as e:
                if json_mode:
                    # Not every OpenAI-compatible server knows response_format: ask once more without it.
                    log.warning(
                        "%s: %s answered 400 to response_format; retrying without it", role, self.endpoint
                    )
                    json_mode = False
                    attempt -= 1
                    continue
                raise self._status_error(role, e, attempt) from None
            except openai.APIStatusError as e:
                if not _retryable(e.status_code) or attempt >= tries:
                    raise self._status_error(role, e, attempt) from None
                self._wait(
                    role, attempt, tries, f"HTTP {e.status_code}", e.response.headers.get("retry-after")
                )
                continue
            except openai.APITimeoutError:
                if attempt >= tries:
                    raise self._error(
                        role, "timeout", f"no reply within {s.timeout_s:g} s; timed out after {tries} tries"
                    ) from None
                self._wait(role, attempt, tries, "timeout")
                continue
            except openai.APIConnectionError as e:
                if attempt >= tries:
                    raise self._error(
                        role,
                        "unreachable",
                        f"cannot connect ({self._cause(e)}) after {tries} tries; is the server up and "
                        "llm.base_url right?",
                    ) from None
                self._wait(role, attempt, tries, f"connection error ({self._cause(e)})")
                continue
            if json_mode != self._json_mode:
                self._json_mode = json_mode  # the server works without response_format: stop sending it
            return self._content(response, role)

    def _content(self, response: Any, role: str) -> tuple[str, str | None]:
        choices = getattr(response, "choices", None)
        if not choices:
            raise self._error(
                role, "empty_reply", "the response has no choices; is base_url an OpenAI-compatible /v1?"
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str) or not content.strip():
            refusal = getattr(message, "refusal", None)
            detail = f"; refusal: {self._preview(refusal)}" if refusal else ""
            raise self._error(role, "empty_reply", f"the reply is empty{detail}")
        return content, getattr(choice, "finish_reason", None)

    def _wait(self, role: str, attempt: int, tries: int, what: str, retry_after: str | None = None) -> None:
        s = self.settings
        with self._lock:
            jitter = self._rng.random()
        delay = s.backoff_s * 2 ** (attempt - 1) * (1 + 0.25 * jitter)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass  # an HTTP date: our own backoff will do
        delay = min(delay, s.max_backoff_s)
        log.warning(
            "%s: %s from %s; retry %d/%d in %.2f s", role, what, self.endpoint, attempt, tries - 1, delay
        )
        time.sleep(delay)

    def _status_error(self, role: str, e: openai.APIStatusError, attempt: int) -> LLMError:
        code = e.status_code
        body = self._preview(_body_text(e))
        if code in (401, 403):
            env = self.settings.api_key_env or "(no key variable)"
            what = f"HTTP {code}: the server refused the API key from ${env}; check it. Server said: {body}"
        elif code == 404:
            what = (
                f"HTTP 404: no such endpoint or model; check llm.base_url (usually ending in /v1) and "
                f"llm.model {self.settings.model!r}. Server said: {body}"
            )
        elif _retryable(code):
            what = f"HTTP {code} after {attempt} tries: {body}"
        else:
            what = f"HTTP {code}: the server rejected the request: {body}"
        return self._error(role, "http_error", what, status=code)

    def _error(self, role: str, reason: ErrorReason, detail: str, **kw: Any) -> LLMError:
        return LLMError(role, self.endpoint, reason, self._redact(detail), model=self.settings.model, **kw)

    def _cause(self, e: BaseException) -> str:
        cause = e.__cause__ or e.__context__ or e
        return self._preview(f"{type(cause).__name__}: {cause}", 160)

    def _preview(self, text: Any, limit: int = 300) -> str:
        text = self._redact(" ".join(str(text).split()))
        return text if len(text) <= limit else text[:limit] + "..."

    def _redact(self, text: str) -> str:
        """Servers echo keys in their errors (OpenAI: 'Incorrect API key provided: sk-abc***xyz')."""
        if len(self._key) >= 4:
            text = text.replace(self._key, "[key]")
        return _KEYLIKE.sub("[key]", text)


_KEYLIKE = re.compile(r"(?:\bsk-[\w*.-]{3,}|(?<=Bearer )[\w*.~+/-]{4,})", re.IGNORECASE)


def _retryable(status: int) -> bool:
    return status in _RETRY_STATUS or status >= 500


def _body_text(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body
        return message if isinstance(message, str) else json.dumps(message)
    try:
        return e.response.text
    except Exception:  # a streamed or closed response: the exception's own text says enough
        return str(e)


def safe_url(url: str) -> str:
    """The URL without user info, query and fragment, fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid base_url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: inside ``` fences first, else anywhere in the prose."""
    decoder = json.JSONDecoder()
    for chunk in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        for m in re.finditer(r"\{", chunk):
            try:
                obj, _ = decoder.raw_decode(chunk, m.start())
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None
