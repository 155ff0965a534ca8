"""The LLM roles of data building played by any OpenAI-compatible endpoint (GPT-4o, vLLM, Azure, ...).

`OpenAIClient` sends one chat completion and returns the first JSON object of the reply. It does its own
retries (exponential backoff with seeded jitter) on connection errors, timeouts, 429 and 5xx, and raises
`LLMError` for everything else; the message names the role, the endpoint and what went wrong, never the key.
One class per role (`roles.py`) holds its prompt, written after the paper's and UFO dataflow's prompts (module
constants below), and validates the reply with pydantic before turning it into `lamops.records` types.

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
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lamops.env.actions import FUNCTIONS
from lamops.records import FilterVerdict, PlanStep, RawEntry, RequestType, TaskPlanPair, Verdict, YesNoUnsure
from lamops.roles.protocols import Drafted, JudgeInput, Prefilled, Roles

log = logging.getLogger(__name__)

ErrorReason = Literal[
    "no_key", "unreachable", "timeout", "http_error", "empty_reply", "not_json", "invalid_reply"
]
# 408 and 409 are what OpenAI's own client retries besides 429 and 5xx: transient on every server we know.
_RETRY_STATUS = frozenset({408, 409, 429})
# Long documents would crowd out the instructions; each prompt section keeps its head and says what it cut.
MAX_SECTION_CHARS = 8000


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


def _clip(text: str, limit: int = MAX_SECTION_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text or "(empty)"
    return f"{text[:limit]}\n... [{len(text) - limit} more characters cut]"


def _lines(lines: list[str]) -> str:
    return "\n".join(lines) if lines else "(none)"


# ---- prompts ---------------------------------------------------------------------------------------------
STRUCTURE_SYSTEM = """\
You turn raw help material about Microsoft Word into task-plan pairs (the Large Action Models paper).
A task is one request a user could give Word, e.g. "Add a border to a page in Word"; its plan is the \
numbered steps that do it in Word's interface, e.g. ["1. Go to Design > Page Borders.", "2. ...", \
"4. Select OK."].
- Keep only tasks done entirely inside the Word desktop application; drop anything about other applications, \
phones, the web version, accounts, installation or purchase.
- English only. A task is one imperative sentence. A plan lists its steps in order, one action each, numbered.
- A documentation section or an article may hold several tasks, or none. A search query is one terse \
request: rewrite it into a complete, specific request and write its plan.
- Never invent features Word does not have. When the entry holds no usable task, reply with no pairs.
Reply with one JSON object only: {"pairs": [{"task": "...", "plan": ["1. ...", "2. ..."]}]}"""

STRUCTURE_USER = """\
<Kind:> {kind}
<Title:> {title}
<Text:>
{text}
<Steps:>
{steps}
<Your response:>"""

EVOLVE_SYSTEM = """\
You make harder variants of Microsoft Word tasks (the data evolving of the Large Action Models paper).
Given a task and its plan, write ONE new task harder than it:
- add one extra requirement of at most 20 words (a format, a position, a value, a second object); or, when a \
second task is given, combine both into one request;
- it must still be done step by step inside Word alone, with concrete values and nothing subjective;
- mark the key objects of the new task in bold, like **Heading 1**;
- update the plan: numbered steps covering the whole new task, in order.
If no sensible harder variant exists, reply {"task": null, "plan": []}.
Reply with one JSON object only: {"task": "...", "plan": ["1. ...", "2. ..."]}"""

EVOLVE_USER = """\
<Task:> {task}
<Plan:>
{plan}
{other}
<Your response:>"""

PREFILL_SYSTEM = """\
You are the task creator and planner of UFO's dataflow for Microsoft Word. You get an abstract task with \
reference steps, and one template document: its description, its text and the controls visible in Word.
1. Instantiate the task on this document as New_task: keep its intent; pick concrete targets that exist in \
the document and quote the exact text to act on; resolve every "or" to one choice; nothing vague or \
subjective; add at most 50 words.
2. Write the action plan: atomic steps in order, each calling one of these functions:
{apis}
Each step is {"Step": 1, "Subtask": "what this step does", "ControlLabel": "", "ControlText": "exact text of \
the control to act on", "Function": "click_input", "Args": {"button": "left", "double": false}}.
ControlText is one of the listed controls when the function acts on a control, "" otherwise. Args hold only \
the function's arguments.
If the task cannot be done on this document with these functions, reply {"New_task": "", "Actions_plan": []}.
Reply with one JSON object only: {"Thought": "...", "New_task": "...", "Actions_plan": [step, ...]}"""

PREFILL_USER = """\
<Given Task:> {task}
<Reference Steps:>
{steps}
<Template:> {template}: {description}
<Document Text:>
{canvas}
<Available Controls:>
{controls}
<Your response:>"""

FILTER_SYSTEM = """\
You are the task judge of UFO's dataflow for Microsoft Word. Decide whether the task in <Task:> can be \
executed as it stands, inside Word alone, and classify it as one type:
- "None": a concrete operation done entirely inside Word (formatting, inserting, editing, settings, ...).
- "Non_task": not an actionable task: subjective ("custom", "as you want"), a question or a preference, \
or it does not name the exact object or string to act on (e.g. "edit the text" without saying which text).
- "App_involve": needs another application or device (Excel, a browser, File Explorer, a printer, e-mail).
- "Env": depends on the environment: installing, updating or downgrading Word, accounts, network, add-ins.
- "Others": impossible, unrelated to Word, or unfit for any other reason.
judge is true exactly when the type is "None".
Reply with one JSON object only: {"judge": true, "thought": "why", "type": "None"}"""

FILTER_USER = """\
<Task:> {request}
<Action Plan:>
{plan}
<Your response:>"""

JUDGE_SYSTEM = """\
You judge whether an agent completed a task in Microsoft Word (the evaluator of the Large Action Models \
paper). You read the request, the agent's actions, the document before and after with their diff, and the \
window's controls before and after.
- Split the request into its sub-goals and score each from the evidence: "yes", "no" or "unsure".
- task_complete is "yes" only when every sub-goal is met in the final document or window, "no" when any is \
clearly not met, "unsure" when the evidence cannot show it. Trust the diff and the final state, not the \
agent's claims.
- task_quality rates the request itself: "ambiguous" (several readings, or no clear target), "over detailed" \
(it dictates interface steps instead of a goal) or "good".
Reply with one JSON object only: \
{"reason": "...", "sub_scores": {"sub-goal": "yes"}, "task_complete": "yes", "task_quality": "good"}"""

JUDGE_USER = """\
<Request:> {request}
<Actions:>
{actions}
<Canvas Diff:>
{diff}
<Canvas Before:>
{before}
<Canvas After:>
{after}
<Initial Control State:>
{controls_before}
<Final Control State:>
{controls_after}
<Your response:>"""


def function_list() -> str:
    """The action functions with their arguments, one per line, from the environment's action space."""
    return "\n".join(f"- {name}({', '.join(args.model_fields)})" for name, args in FUNCTIONS.items())


# ---- reply models ----------------------------------------------------------------------------------------
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _lower(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value.strip().lower() if isinstance(value, str) else value


def _quality(value: Any) -> Any:
    return re.sub(r"[\s_-]+", " ", value.strip().lower()) if isinstance(value, str) else value


Score = Annotated[YesNoUnsure, BeforeValidator(_lower)]


class _Reply(BaseModel):
    # Models add fields of their own (Observation, Thought): ignore them, require ours.
    model_config = ConfigDict(extra="ignore")


class PairReply(_Reply):
    task: Text
    plan: list[Text] = Field(min_length=1)


class StructureReply(_Reply):
    pairs: list[PairReply]


class EvolveReply(_Reply):
    task: str | None
    plan: list[Text]

    @field_validator("plan")
    @classmethod
    def _plan_for_task(cls, plan: list[str], info: ValidationInfo) -> list[str]:
        if (info.data.get("task") or "").strip() and not plan:
            raise ValueError("the new task has an empty plan")
        return plan


class UfoStepReply(_Reply):
    Step: int
    Subtask: str
    ControlLabel: str | int | None = ""
    ControlText: str | None = ""
    Function: str
    Args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("Function")
    @classmethod
    def _known_function(cls, name: str) -> str:
        name = name.strip()
        if name and name not in FUNCTIONS:
            raise ValueError(f"unknown function {name!r}; known: {', '.join(FUNCTIONS)}")
        return name

    @field_validator("Args", mode="before")
    @classmethod
    def _args(cls, args: Any) -> Any:
        if args is None or args == "":
            return {}
        if isinstance(args, str):  # some models write Args as a JSON string
            return first_json_object(args) or args
        return args


class PrefillReply(_Reply):
    New_task: str
    Actions_plan: list[UfoStepReply]

    @field_validator("Actions_plan", mode="before")
    @classmethod
    def _steps(cls, plan: Any) -> Any:
        # UFO's prefill_v2 prompt has the plan as one string of step objects separated by newlines.
        if isinstance(plan, str):
            return _json_objects(plan)
        return plan


def _json_objects(text: str) -> list[Any]:
    decoder, out, pos = json.JSONDecoder(), [], 0
    while (start := text.find("{", pos)) != -1:
        try:
            obj, pos = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        out.append(obj)
    return out if out else [text]  # nothing parsable: let validation name the field


_REQUEST_TYPES: dict[str, RequestType] = {
    "none": "None",
    "normal_task": "None",
    "non_task": "Non_task",
    "app_involve": "App_involve",
    "external_app_involve": "App_involve",
    "env": "Env",
    "version_update": "Env",
    "template_miss": "Others",
    "others": "Others",
}


class FilterReply(_Reply):
    judge: bool
    thought: str
    type: RequestType

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        if value is None:
            return "None"  # JSON null for UFO's "None"
        if isinstance(value, str):
            return _REQUEST_TYPES.get(value.strip().lower().replace("-", "_").replace(" ", "_"), value)
        return value


class JudgeReply(_Reply):
    reason: str
    sub_scores: dict[str, Score]
    task_complete: Score = Field(validation_alias=AliasChoices("task_complete", "complete"))
    task_quality: Annotated[Literal["ambiguous", "over detailed", "good"], BeforeValidator(_quality)]


# ---- the roles -------------------------------------------------------------------------------------------
class OpenAIStructurer:
    """Raw entry -> task-plan pairs (paper: GPT-4o structures documentation, articles and queries)."""

    role = "structure"

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client

    def structure(self, entry: RawEntry) -> list[Drafted]:
        user = STRUCTURE_USER.format(
            kind=entry.kind, title=entry.title, text=_clip(entry.text), steps=_lines(entry.steps)
        )
        reply = self.client.complete(STRUCTURE_SYSTEM, user, StructureReply, role=self.role)
        return [Drafted(task=p.task, plan=list(p.plan)) for p in reply.pairs]


class OpenAIEvolver:
    """A pair -> a harder variant (an added requirement, or a combination with a second pair)."""

    role = "evolve"

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client

    def evolve(self, pair: TaskPlanPair, other: TaskPlanPair | None) -> Drafted | None:
        if other is None:
            second = "<Second Task:> none; add one requirement"
        else:
            second = f"<Second Task:> {other.task}\n<Its Plan:>\n{_lines(other.plan)}"
        user = EVOLVE_USER.format(task=pair.task, plan=_lines(pair.plan), other=second)
        reply = self.client.complete(EVOLVE_SYSTEM, user, EvolveReply, role=self.role)
        task = (reply.task or "").strip()
        if not task or task == pair.task.strip():
            return None  # the model found no harder variant
        return Drafted(task=task, plan=list(reply.plan))


class OpenAIPrefiller:
    """UFO's prefill: a pair made concrete on one template, with an action plan of known functions."""

    role = "prefill"

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client
        self.system = PREFILL_SYSTEM.replace("{apis}", function_list())

    def prefill(
        self, pair: TaskPlanPair, template: str, description: str, canvas: str, controls: list[str]
    ) -> Prefilled | None:
        user = PREFILL_USER.format(
            task=pair.task,
            steps=_lines(pair.plan),
            template=template,
            description=description,
            canvas=_clip(canvas),
            controls=_clip("\n".join(controls)),
        )
        reply = self.client.complete(self.system, user, PrefillReply, role=self.role)
        # UFO leaves Function empty on a step it thinks needs no action; such steps do nothing.
        steps = [s for s in reply.Actions_plan if s.Function]
        request = reply.New_task.strip()
        if not request or not steps:
            return None
        plan = [
            PlanStep(
                step=i,  # renumbered: the executor and the result record key steps by number
                subtask=s.Subtask,
                control_text=s.ControlText or "",
                function=s.Function,
                # UFO's examples put the control's label in Args; our steps name the control by its text.
                args={k: v for k, v in s.Args.items() if k != "control_id"},
            )
            for i, s in enumerate(steps, start=1)
        ]
        return Prefilled(request=request, action_plan=plan, family=None)


class OpenAIFilter:
    """UFO's instantiation evaluation: {judge, thought, type}."""

    role = "filter"

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client

    def filter(self, request: str, action_plan: list[PlanStep]) -> FilterVerdict:
        plan = "\n".join(
            f"{s.step}. {s.subtask} [{s.function}({json.dumps(s.args, ensure_ascii=False)})"
            f"{' on ' + repr(s.control_text) if s.control_text else ''}]"
            for s in action_plan
        )
        user = FILTER_USER.format(request=request, plan=plan or "(none)")
        reply = self.client.complete(FILTER_SYSTEM, user, FilterReply, role=self.role)
        # Keep the verdict coherent (FilterVerdict: type None means yes): a rejection needs a type, and a
        # task with a rejecting type is rejected whatever `judge` says.
        request_type: RequestType = reply.type
        if not reply.judge and request_type == "None":
            request_type = "Others"
        return FilterVerdict(
            judge=reply.judge and request_type == "None", thought=reply.thought, request_type=request_type
        )


class OpenAIJudge:
    """The paper's judge: completion and task quality from the canvas diff and the control states."""

    role = "judge"

    def __init__(self, client: OpenAIClient) -> None:
        self.client = client

    def judge(self, case: JudgeInput) -> Verdict:
        user = JUDGE_USER.format(
            request=case.request,
            actions=_clip("\n".join(f"{i}. {a}" for i, a in enumerate(case.actions, start=1))),
            diff=_clip(case.canvas_diff),
            before=_clip(case.canvas_before),
            after=_clip(case.canvas_after),
            controls_before=_clip(case.controls_before),
            controls_after=_clip(case.controls_after),
        )
        reply = self.client.complete(JUDGE_SYSTEM, user, JudgeReply, role=self.role)
        return Verdict(
            complete=reply.task_complete,
            reason=reply.reason,
            sub_scores=dict(reply.sub_scores),
            task_quality=reply.task_quality,
        )


def make_openai_roles(settings: LLMSettings) -> Roles:
    """All five roles on one client (one connection pool, one json-mode fallback)."""
    client = OpenAIClient(settings)
    return Roles(
        structure=OpenAIStructurer(client),
        evolve=OpenAIEvolver(client),
        prefill=OpenAIPrefiller(client),
        filter=OpenAIFilter(client),
        judge=OpenAIJudge(client),
    )
