"""A task the instantiation filter turns away is in instantiate's quarantine, not only in its records."""

from types import SimpleNamespace

from lamops.data.instantiate import Item, instantiate_batch
from lamops.records import FilterVerdict, TaskPlanPair
from lamops.roles.protocols import Prefilled


def test_a_filtered_task_is_quarantined_with_the_filters_reasoning(monkeypatch):
    pair = TaskPlanPair(
        task_id="t1", task="Make it nicer", plan=["a", "b"], source="howto", origin="howto/a:3"
    )
    roles = SimpleNamespace(
        prefill=SimpleNamespace(
            prefill=lambda *args: Prefilled(request="Make the document nicer", action_plan=[])
        ),
        filter=SimpleNamespace(
            filter=lambda request, plan: FilterVerdict(
                judge=False, thought="subjective", request_type="Non_task"
            )
        ),
    )
    monkeypatch.setattr("lamops.roles.make_roles", lambda llm, parents: roles)
    (result,) = instantiate_batch([Item(pair, [], [("plain_text", 1.0)], 0.0)], None, 1, {"plain_text": "x"})
    assert result["filtered"] == "Non_task"
    rejected = result["rejected"]
    assert (rejected.stage, rejected.reason, rejected.origin) == ("instantiate", "filtered", "howto/a:3")
    assert "Non_task" in rejected.detail and "subjective" in rejected.detail
