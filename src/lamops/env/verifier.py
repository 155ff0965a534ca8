"""The verifier: judges an episode from the canvas diff and the task family's goal predicate.

Answers in UFO's evaluator format: `complete` yes / no / unsure, a reason, and yes/no sub-scores. Besides the
family's own checks it adds two the family does not have to think about: nothing outside the task's scope
changed (a careless agent that bolds the whole document fails), and, for formatting tasks, the text is
intact."""

from __future__ import annotations

import io

import docx
from docx.document import Document

from lamops.env.families import get_family
from lamops.env.families.base import full_text
from lamops.records import InstantiatedTask, Verdict


def changed_keys(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> set[str]:
    """Canvas keys whose line differs, appeared or disappeared."""
    a, b = dict(before), dict(after)
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def judge(
    task: InstantiatedTask,
    before: Document,
    after: Document,
    before_items: list[tuple[str, str]],
    after_items: list[tuple[str, str]],
) -> Verdict:
    """Pure judgement of one episode from the two documents and their canvas states."""
    if task.family is None:
        return Verdict(complete="unsure", reason="the task has no goal predicate; an LLM judge must decide")
    family = get_family(task.family)
    try:
        checks = family.goal(before, after, task.params)
        scope = family.scope(task.params)
        preserves_text = family.preserves_text(task.params)
    except Exception as e:  # a predicate that cannot read the result cannot say yes or no
        return Verdict(complete="unsure", reason=f"goal check failed to run: {type(e).__name__}: {e}")
    changed = changed_keys(before_items, after_items)
    if scope is not None:
        checks["no_collateral_changes"] = not (changed - scope)
    if preserves_text:
        checks["text_intact"] = full_text(before) == full_text(after)
    checks["document_changed"] = bool(changed)
    failed = [k for k, v in checks.items() if not v]
    if failed:
        detail = ""
        if "no_collateral_changes" in failed:
            detail = f" (changed outside the task: {', '.join(sorted(changed - scope))})"
        reason = f"failed: {', '.join(failed)}{detail}"
    else:
        reason = f"all {len(checks)} checks passed; changed: {', '.join(sorted(changed))}"
    return Verdict(
        complete="no" if failed else "yes",
        reason=reason,
        sub_scores={k: "yes" if v else "no" for k, v in checks.items()},
    )


def verify(env) -> Verdict:
    """Judge the environment's current episode; the result document must also survive a save and reopen."""
    from lamops.env.canvas import canvas_items

    try:
        after = docx.Document(io.BytesIO(env.live.to_bytes()))
    except Exception as e:
        return Verdict(
            complete="no",
            reason=f"the document does not reopen after saving: {e}",
            sub_scores={"document_reopens": "no"},
        )
    before = env.pristine_document()
    verdict = judge(env.task, before, after, env.initial_items, canvas_items(env.live))
    verdict.sub_scores["document_reopens"] = "yes"
    return verdict
