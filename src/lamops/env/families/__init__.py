"""The task families: every kind of task the built-in environment can pose and check.

`FAMILIES` maps each family's name to an instance; `sample_task` turns (family, template, seed) into an
`InstantiatedTask` whose reference action plan the expert can follow and whose goal the verifier checks."""

from __future__ import annotations

import io
import random
from functools import cache

import docx
from docx.document import Document

from lamops.env.families import document as _document
from lamops.env.families import paragraphs as _paragraphs
from lamops.env.families import text as _text
from lamops.env.families.base import Family, TaskSpec
from lamops.env.families.composite import NAME as COMPOSITE
from lamops.env.families.composite import Composite
from lamops.records import InstantiatedTask

FAMILIES: dict[str, Family] = {
    cls.name: cls() for cls in (*_text.FAMILIES, *_paragraphs.FAMILIES, *_document.FAMILIES)
}


_COMPOSITE = Composite()


def get_family(name: str) -> Family:
    """A family by name; `composite` (several families in one task, built by composite.compose) included."""
    if name == COMPOSITE:
        return _COMPOSITE
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(FAMILIES)}") from None


@cache
def template_document(template: str) -> Document:
    """A read-only parsed copy of a built-in template (callers must not modify it)."""
    from lamops.env.templates import template_bytes

    return docx.Document(io.BytesIO(template_bytes(template)))


def applicable_templates(family: str) -> list[str]:
    from lamops.env.templates import TEMPLATES

    return [t for t in TEMPLATES if get_family(family).applies(template_document(t))]


def sample_task(
    family: str, template: str, seed: int, doc: Document | None = None
) -> InstantiatedTask | None:
    """A concrete task of `family` on `template`, or None when the family does not apply to it."""
    fam = get_family(family)
    spec: TaskSpec | None = fam.sample(
        doc if doc is not None else template_document(template), random.Random(seed)
    )
    if spec is None:
        return None
    return InstantiatedTask(
        task_id=f"{family}-{template}-{seed}",
        family=family,
        category=fam.category,
        template=template,
        request=spec.request,
        plan=spec.plan,
        action_plan=spec.actions,
        params=spec.params,
        seed=seed,
    )


__all__ = ["FAMILIES", "Family", "applicable_templates", "get_family", "sample_task", "template_document"]
