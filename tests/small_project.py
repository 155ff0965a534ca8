"""Overrides of a small data project (in-process data stages, ~40 tasks), shared by the test modules that
build one from params.yaml: tests/test_train_stages.py and tests/test_evaluate_promote.py."""

DATA = [
    "sources.docs_pages=2",
    "sources.howto_articles=60",
    "sources.queries=20",
    "collect.workers=0",
    "evolve.workers=0",
    "instantiate.max_tasks=40",
    "instantiate.workers=0",
    "execute.workers=0",
    "judge.workers=0",
]
DATA_STAGES = ("templates", "sources", "collect", "evolve", "instantiate", "execute", "judge", "datasets")
