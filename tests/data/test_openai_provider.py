"""A data stage with `llm.provider: openai` talks to an OpenAI-compatible endpoint (a real local server),
and the API key reaches the server but never the stage's MLflow run."""

import json
import shutil
from pathlib import Path

from helpers import ROOT

from lamops.config import load_config
from lamops.stages import get_stage
from tests.agents.test_llm_client import (
    FakeLLM,
    Request,
    reply,
    server,  # noqa: F401 (the fake endpoint, a pytest fixture)
)

KEY = "sk-stage-test-0123456789"


def test_collect_structures_with_the_configured_endpoint(
    tmp_path: Path,
    server: FakeLLM,  # noqa: F811 (the fixture imported above)
    monkeypatch,
):
    monkeypatch.setenv("LAMOPS_STAGE_TEST_KEY", KEY)
    shutil.copy(ROOT / "params.yaml", tmp_path)
    (tmp_path / "raw/queries").mkdir(parents=True)
    (tmp_path / "raw/queries/q.txt").write_text("word how to make text bold\nword insert table 3x4\n")

    def answer(req: Request):
        query = "bold" if "bold" in req.user else "table"
        if query == "bold":
            return reply(
                {
                    "pairs": [
                        {
                            "task": "Make the selected text bold in Word",
                            "plan": ["Select the text.", "On the **Home** tab, click **Bold**."],
                        }
                    ]
                }
            )
        return reply(
            {
                "pairs": [
                    {
                        "task": "Insert a table with 3 rows and 4 columns in Word",
                        "plan": ["Open the **Insert** tab.", "Click **Table** and pick 3 x 4."],
                    }
                ]
            }
        )

    server.answer = answer
    cfg = load_config(
        tmp_path / "params.yaml",
        "tiny",
        [
            "collect.sources=raw",
            "collect.workers=0",
            "llm.provider=openai",
            f"llm.base_url={server.url}",
            "llm.model=test-model",
            "llm.api_key_env=LAMOPS_STAGE_TEST_KEY",
        ],
    )
    result = get_stage("collect")(cfg)
    pairs = [json.loads(line) for line in (tmp_path / "data/task_plans/collected/pairs.jsonl").open()]
    assert sorted(p["task"] for p in pairs) == [
        "Insert a table with 3 rows and 4 columns in Word",
        "Make the selected text bold in Word",
    ]
    assert result.metrics["kept"] == 2
    assert len(server.requests) == 2
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert all(r.body["temperature"] == 0 and r.body["model"] == "test-model" for r in server.requests)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(client.get_experiment_by_name("lamops").experiment_id)
    logged = json.dumps({"params": run.data.params, "tags": run.data.tags})
    assert KEY not in logged
