"""The LLM roles of data building played by an OpenAI-compatible endpoint (`lamops.roles.openai_compat`'s
`OpenAIClient`). One class per role holds its prompt, written after the paper's and UFO dataflow's prompts
(module constants below), and validates the reply with pydantic before turning it into `lamops.records` types.

Stages should catch `LLMError` per item and quarantine the item with `err.reason`: a reply that breaks the
contract (not JSON, a missing field, an unknown function) is a property of that item, not of the run.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from lamops.env.actions import FUNCTIONS
from lamops.records import FilterVerdict, PlanStep, RawEntry, RequestType, TaskPlanPair, Verdict, YesNoUnsure
from lamops.roles.openai_compat import LLMSettings, OpenAIClient, first_json_object
from lamops.roles.protocols import Drafted, JudgeInput, Prefilled, Roles

# Long documents would crowd out the instructions; each prompt section keeps its head and says what it cut.
MAX_SECTION_CHARS = 8000


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
