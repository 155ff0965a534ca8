"""The OpenAI-compatible client and its five roles against a real HTTP server on 127.0.0.1.

The server is stdlib `http.server` speaking `POST /v1/chat/completions`; each test tells it how to answer and
reads back the requests it got. The openai client is never patched: sockets, timeouts and retries are real.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lamops.records import PlanStep, RawEntry, TaskPlanPair
from lamops.roles.openai_compat import LLMError, LLMSettings, OpenAIClient, first_json_object
from lamops.roles.openai_roles import (
    OpenAIEvolver,
    OpenAIFilter,
    OpenAIJudge,
    OpenAIPrefiller,
    OpenAIStructurer,
    make_openai_roles,
)
from lamops.roles.protocols import JudgeInput

pytestmark = pytest.mark.timeout(30)

KEY_ENV = "LAMOPS_TEST_LLM_KEY"
KEY = "sk-test-0123456789abcdef"


# ---- the fake server ---------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    body: dict[str, Any] | str
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def chat(content: str, finish_reason: str = "stop") -> Answer:
    """A chat completion in the OpenAI response shape."""
    return Answer(
        200,
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


def reply(obj: dict[str, Any]) -> Answer:
    return chat(json.dumps(obj))


def error(status: int, message: str, **headers: str) -> Answer:
    return Answer(
        status, {"error": {"message": message, "type": "test_error", "code": None}}, headers=headers
    )


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system(self) -> str:
        return self.body["messages"][0]["content"]

    @property
    def user(self) -> str:
        return self.body["messages"][1]["content"]


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.answer: Callable[[Request], Answer] = lambda req: reply({})
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def answers(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; the last one repeats."""
        queue = list(answers)
        self.answer = lambda req: queue.pop(0) if len(queue) > 1 else queue[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        fake: FakeLLM = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = Request(
            self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}")
        )
        fake.requests.append(request)
        if self.path != "/v1/chat/completions":
            answer = error(404, f"no route {self.path}")
        else:
            answer = fake.answer(request)
        if answer.delay and fake.stop.wait(answer.delay):
            return  # the test is over
        data = (answer.body if isinstance(answer.body, str) else json.dumps(answer.body)).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.thread.start()
    yield fake
    fake.stop.set()
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def settings(url: str, **overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {
        "base_url": url,
        "model": "test-model",
        "api_key_env": KEY_ENV,
        "timeout_s": 2.0,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
    }
    return LLMSettings(**(values | overrides))


def client(server: FakeLLM, **overrides: Any) -> OpenAIClient:
    return OpenAIClient(settings(server.url, **overrides))


def line(text: str, tag: str) -> str:
    """The rest of the prompt line that starts with `tag`."""
    return next(row[len(tag) :].strip() for row in text.splitlines() if row.startswith(tag))


def step(n: int, subtask: str, control: str, function: str, args: dict[str, Any]) -> dict[str, Any]:
    """A plan step as UFO's prefill writes it."""
    return {
        "Step": n,
        "Subtask": subtask,
        "ControlLabel": "",
        "ControlText": control,
        "Function": function,
        "Args": args,
    }


def pair(task: str, plan: list[str], task_id: str = "word_001") -> TaskPlanPair:
    return TaskPlanPair(task_id=task_id, task=task, plan=plan, source="doc", origin="test.md#1")


# ---- each role round-trips ---------------------------------------------------------------------------------
def test_structure_round_trip(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        assert "task-plan pairs" in req.system
        assert line(req.user, "<Kind:>") == "doc"
        assert "1. Go to Design > Page Borders." in req.user
        return reply({"pairs": [{"task": f"{line(req.user, '<Title:>')} in Word", "plan": ["1. a", "2. b"]}]})

    server.answer = answer
    entry = RawEntry(
        kind="doc",
        origin="borders.md#2",
        title="Add a border to a page",
        text="Borders frame a page.",
        steps=["1. Go to Design > Page Borders.", "2. Select OK."],
    )
    drafted = make_openai_roles(settings(server.url)).structure.structure(entry)
    assert [(d.task, d.plan) for d in drafted] == [("Add a border to a page in Word", ["1. a", "2. b"])]


def test_structure_with_no_pairs_is_empty(server: FakeLLM) -> None:
    server.answers(reply({"pairs": []}))
    entry = RawEntry(kind="query", origin="q.txt:3", title="word on iphone")
    assert OpenAIStructurer(client(server)).structure(entry) == []


def test_evolve_combines_with_the_other_pair(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        assert "harder variants" in req.system
        first, second = line(req.user, "<Task:>"), line(req.user, "<Second Task:>")
        return reply({"task": f"{first} and {second.lower()}", "plan": ["1. x", "2. y", "3. z"]})

    server.answer = answer
    evolved = OpenAIEvolver(client(server)).evolve(
        pair("Make the title bold", ["1. Select the title.", "2. Click Bold."]),
        pair("Center the title", ["1. Click Center."], "word_002"),
    )
    assert evolved is not None
    assert evolved.task == "Make the title bold and center the title"
    assert evolved.plan == ["1. x", "2. y", "3. z"]


def test_evolve_without_a_variant_is_none(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        assert "none; add one requirement" in req.user
        return reply({"task": None, "plan": []})

    server.answer = answer
    assert OpenAIEvolver(client(server)).evolve(pair("Make the title bold", ["1. Click Bold."]), None) is None


def test_prefill_round_trip(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        assert "select_paragraph(start_index, end_index)" in req.system  # the action space reaches the prompt
        assert line(req.user, "<Template:>") == "letter.docx: a cover letter"
        assert "Bold" in req.user and "Dear Hiring Manager" in req.user
        steps = [
            step(1, "select", "", "select_text", {"text": "Dear Hiring Manager"}),
            step(2, "nothing", "", "", {}),
            step(
                3, "bold it", "Bold", "click_input", {"control_id": "12", "button": "left", "double": False}
            ),
        ]
        return reply({"Thought": "t", "New_task": "Bold 'Dear Hiring Manager'", "Actions_plan": steps})

    server.answer = answer
    prefilled = OpenAIPrefiller(client(server)).prefill(
        pair("Make text bold", ["1. Select text.", "2. Click Bold."]),
        "letter.docx",
        "a cover letter",
        "Dear Hiring Manager,\nI am writing...",
        ["1:Bold:Button", "2:Italic:Button"],
    )
    assert prefilled is not None
    assert prefilled.request == "Bold 'Dear Hiring Manager'"
    assert prefilled.family is None and prefilled.params == {}
    bold = {"button": "left", "double": False}
    assert prefilled.action_plan == [
        PlanStep(step=1, subtask="select", function="select_text", args={"text": "Dear Hiring Manager"}),
        PlanStep(step=2, subtask="bold it", control_text="Bold", function="click_input", args=bold),
    ]


def test_prefill_reads_ufo_plan_as_a_string(server: FakeLLM) -> None:
    """UFO's prefill_v2 prompt asks for the plan as one string of step objects separated by newlines."""
    one = json.dumps(step(1, "s", "Bold", "click_input", {}))
    server.answers(reply({"New_task": "Bold it", "Actions_plan": f"{one}\n{one}"}))
    prefilled = OpenAIPrefiller(client(server)).prefill(pair("t", ["1. s"]), "a.docx", "d", "text", ["Bold"])
    assert prefilled is not None and [s.step for s in prefilled.action_plan] == [1, 2]


def test_prefill_that_cannot_be_is_none(server: FakeLLM) -> None:
    server.answers(reply({"New_task": "", "Actions_plan": []}))
    assert OpenAIPrefiller(client(server)).prefill(pair("t", ["1. s"]), "a.docx", "d", "text", []) is None


def test_prefill_rejects_an_unknown_function(server: FakeLLM) -> None:
    server.answers(reply({"New_task": "Do it", "Actions_plan": [step(1, "s", "", "open_excel", {})]}))
    with pytest.raises(LLMError, match="unknown function 'open_excel'") as info:
        OpenAIPrefiller(client(server)).prefill(pair("t", ["1. s"]), "a.docx", "d", "text", [])
    assert info.value.field == "Actions_plan.0.Function" and info.value.reason == "invalid_reply"
    assert "'prefill'" in str(info.value)


def test_filter_round_trip(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        task = line(req.user, "<Task:>")
        assert "select_text" in req.user  # the action plan is shown
        if "Excel" in task:
            return reply({"judge": False, "thought": "needs Excel", "type": "EXTERNAL_APP_INVOLVE"})
        if "custom" in task:
            return reply({"judge": False, "thought": "subjective", "type": None})
        return reply({"judge": True, "thought": "fine", "type": "None"})

    server.answer = answer
    flt = OpenAIFilter(client(server))
    plan = [PlanStep(step=1, subtask="s", function="select_text", args={"text": "Title"})]
    ok = flt.filter("Make 'Title' bold", plan)
    assert (ok.judge, ok.request_type, ok.thought) == (True, "None", "fine")
    excel = flt.filter("Paste the table from Excel", plan)
    assert (excel.judge, excel.request_type) == (False, "App_involve")
    # A rejection whose type says "None" is made coherent: rejected for another reason.
    custom = flt.filter("Make a custom style", plan)
    assert (custom.judge, custom.request_type) == (False, "Others")


def judge_case() -> JudgeInput:
    return JudgeInput(
        request="Make 'Title' bold",
        canvas_before="<p>Title</p>",
        canvas_after="<p><b>Title</b></p>",
        canvas_diff="- <p>Title</p>\n+ <p><b>Title</b></p>",
        controls_before="7:Bold:Button(off)",
        controls_after="7:Bold:Button(on)",
        actions=["select_text(text='Title')", "click_input on Bold"],
    )


def test_judge_round_trip(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        assert "+ <p><b>Title</b></p>" in req.user
        assert "7:Bold:Button(off)" in req.user and "7:Bold:Button(on)" in req.user
        assert "2. click_input on Bold" in req.user
        # UFO's key `complete`, capitalised values and a hyphen are all accepted.
        return reply(
            {
                "reason": "bold",
                "sub_scores": {"bold": "Yes"},
                "complete": "YES",
                "task_quality": "over-detailed",
            }
        )

    server.answer = answer
    verdict = OpenAIJudge(client(server)).judge(judge_case())
    assert verdict.complete == "yes" and verdict.reason == "bold"
    assert verdict.sub_scores == {"bold": "yes"} and verdict.task_quality == "over detailed"


def test_judge_reply_missing_a_field_names_it(server: FakeLLM) -> None:
    server.answers(reply({"reason": "r", "sub_scores": {}, "task_quality": "good"}))
    with pytest.raises(LLMError, match="no field 'task_complete'") as info:
        OpenAIJudge(client(server)).judge(judge_case())
    assert info.value.field == "task_complete" and "'judge'" in str(info.value)


def test_judge_reply_with_a_wrong_value_names_the_field(server: FakeLLM) -> None:
    server.answers(reply({"reason": "r", "sub_scores": {}, "task_complete": "maybe", "task_quality": "good"}))
    with pytest.raises(LLMError, match="task_complete") as info:
        OpenAIJudge(client(server)).judge(judge_case())
    assert info.value.reason == "invalid_reply"


def test_wrong_type_names_the_field(server: FakeLLM) -> None:
    server.answers(reply({"pairs": [{"task": "t", "plan": "1. not a list"}]}))
    with pytest.raises(LLMError, match="'pairs.0.plan'"):
        OpenAIStructurer(client(server)).structure(RawEntry(kind="doc", origin="o", title="t"))


# ---- replies that are not plain JSON -----------------------------------------------------------------------
def test_fenced_json_in_prose_is_extracted(server: FakeLLM) -> None:
    server.answers(
        chat('Sure! Here it is {not json}:\n```json\n{"judge": true, "thought": "ok", "type": "None"}\n```')
    )
    verdict = OpenAIFilter(client(server)).filter("Bold 'Title'", [])
    assert verdict.judge is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('The answer: {"a": {"b": [1, 2]}} and {"c": 3}', {"a": {"b": [1, 2]}}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('use {braces} then ```json\n{"a": 2}\n```', {"a": 2}),
        ("[1, 2]", None),
        ("no json here", None),
    ],
)
def test_first_json_object(text: str, expected: dict | None) -> None:
    assert first_json_object(text) == expected


def test_reply_that_is_not_json_raises(server: FakeLLM) -> None:
    server.answers(chat("I cannot help with that."))
    with pytest.raises(LLMError, match="no JSON object.*I cannot help") as info:
        client(server).complete_json("sys JSON", "user", role="structure")
    assert info.value.reason == "not_json" and "'structure'" in str(info.value)


def test_reply_cut_at_max_tokens_says_so(server: FakeLLM) -> None:
    server.answers(chat('{"pairs": [{"task": "t", "pla', finish_reason="length"))
    with pytest.raises(LLMError, match="max_tokens=2048"):
        client(server).complete_json("sys", "user")


# ---- retries and failures ----------------------------------------------------------------------------------
def test_500_then_success_is_retried(server: FakeLLM) -> None:
    server.answers(error(500, "boom"), reply({"ok": True}))
    assert client(server).complete_json("sys", "user") == {"ok": True}
    assert len(server.requests) == 2


def test_429_is_retried(server: FakeLLM) -> None:
    server.answers(error(429, "slow down", **{"Retry-After": "0"}), error(503, "busy"), reply({"ok": 1}))
    assert client(server).complete_json("sys", "user") == {"ok": 1}
    assert len(server.requests) == 3


def test_5xx_gives_up_after_max_retries(server: FakeLLM) -> None:
    server.answers(error(502, "bad gateway"))
    with pytest.raises(LLMError, match="HTTP 502 after 3 tries") as info:
        client(server, max_retries=2).complete_json("sys", "user", role="evolve")
    assert len(server.requests) == 3 and info.value.status == 502


def test_401_is_not_retried_and_hides_the_key(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        # Real servers echo the key they refused (OpenAI masks the middle; this one does not).
        return error(401, f"Incorrect API key provided: {req.headers['authorization']}")

    server.answer = answer
    with pytest.raises(LLMError) as info:
        client(server).complete_json("sys", "user", role="judge")
    err = info.value
    assert len(server.requests) == 1
    assert err.status == 401 and err.reason == "http_error"
    assert f"${KEY_ENV}" in str(err) and server.url in str(err) and "'judge'" in str(err)
    assert KEY not in str(err) and KEY[:10] not in str(err)
    assert (
        err.__cause__ is None and err.__suppress_context__
    )  # the openai error, which holds the key, is dropped


def test_404_is_not_retried(server: FakeLLM) -> None:
    with pytest.raises(LLMError, match="HTTP 404.*base_url"):
        OpenAIClient(settings(server.url.removesuffix("/v1") + "/wrong")).complete_json("sys", "user")
    assert len(server.requests) == 1


def test_slow_server_times_out_after_all_tries(server: FakeLLM) -> None:
    server.answers(Answer(200, "{}", delay=10))
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"no reply within 0.5 s; timed out after 2 tries") as info:
        client(server, timeout_s=0.5, max_retries=1).complete_json("sys", "user")
    # Not a speed target: the server would answer only after 10 s, so finishing well before means the
    # timeout fired on every try instead of waiting (generous bound for a loaded machine).
    assert time.monotonic() - start < 8.0
    assert info.value.reason == "timeout" and len(server.requests) == 2


def test_unreachable_port_fails_fast() -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(LLMError, match="cannot connect.*after 3 tries") as info:
        OpenAIClient(settings(f"http://127.0.0.1:{port}/v1")).complete_json("sys", "user")
    assert time.monotonic() - start < 10.0  # no hang: refused connections are not waited on
    assert info.value.reason == "unreachable" and f"127.0.0.1:{port}/v1" in str(info.value)


def test_empty_choices_raise(server: FakeLLM) -> None:
    server.answers(
        Answer(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
    )
    with pytest.raises(LLMError, match="no choices") as info:
        client(server).complete_json("sys", "user")
    assert info.value.reason == "empty_reply"


# ---- what reaches the server -------------------------------------------------------------------------------
def test_request_carries_model_temperature_json_mode_and_bearer_key(server: FakeLLM) -> None:
    server.answers(reply({"ok": True}))
    client(server, max_tokens=321).complete_json("the system", "the user")
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "test-model"
    assert req.body["temperature"] == 0
    assert req.body["max_tokens"] == 321
    assert req.body["response_format"] == {"type": "json_object"}
    assert req.body["messages"] == [
        {"role": "system", "content": "the system"},
        {"role": "user", "content": "the user"},
    ]


def test_server_without_json_mode_is_asked_again_without_it(server: FakeLLM) -> None:
    def answer(req: Request) -> Answer:
        if "response_format" in req.body:
            return error(400, "response_format is not supported")
        return reply({"ok": True})

    server.answer = answer
    llm = client(server)
    assert llm.complete_json("sys", "user") == {"ok": True}
    assert llm.complete_json("sys", "user") == {"ok": True}  # remembered: no second 400
    assert ["response_format" in r.body for r in server.requests] == [True, False, False]


def test_other_400_is_not_retried_beyond_the_json_mode_fallback(server: FakeLLM) -> None:
    server.answers(error(400, "context too long"))
    with pytest.raises(LLMError, match="HTTP 400: the server rejected the request: context too long"):
        client(server).complete_json("sys", "user")
    assert len(server.requests) == 2


def test_missing_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LLMError, match=f"environment variable {KEY_ENV} is not set") as info:
        OpenAIClient(settings("http://127.0.0.1:9/v1"))
    assert info.value.reason == "no_key"


def test_settings_hold_no_key_and_urls_lose_credentials() -> None:
    with pytest.raises(ValueError, match="api_key"):
        LLMSettings(api_key=KEY)  # type: ignore[call-arg]
    llm = OpenAIClient(settings("http://user:secret@127.0.0.1:9/v1?token=abc"))
    assert llm.endpoint == "http://127.0.0.1:9/v1"
    assert KEY not in repr(llm) and "secret" not in repr(llm)
