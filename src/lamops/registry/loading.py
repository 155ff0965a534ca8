"""Loading a model for inference: a registered version (`models:/NAME/VERSION`, `models:/NAME@ALIAS`) from
the params' MLflow registry, or a local save_pretrained folder. `lamops agent` loads its LAM here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamops.config import Config

HOW_TO_GET_A_MODEL = (
    "run `lamops pipeline` then `lamops promote` to register one, or pass --model models/lam4 "
    "(a save_pretrained folder)"
)
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


class ModelUnavailable(LookupError):
    """The model asked for cannot be found or loaded; the message says what was tried and what to do."""


def load_model(model: str, cfg: Config) -> tuple[Any, Any]:
    """(model, tokenizer) from `models:/NAME/VERSION`, `models:/NAME@ALIAS` (the params' MLflow registry), a
    local save_pretrained folder or a peft adapter folder naming its base (relative to the working folder,
    else to the project root; an adapter is merged into its base). Raises
    ModelUnavailable with a one-line message naming what was tried."""
    if model.startswith("models:/"):
        return _load_registered(model, cfg)
    candidates = [Path(model).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(cfg.root / model)
    from lamops.models.factory import is_model_folder, make_model

    folder = next((c for c in candidates if is_model_folder(c)), None)
    if folder is None:
        where = candidates[0].resolve()
        what = "has no config.json" if where.is_dir() else "does not exist"
        raise ModelUnavailable(
            f"no model at {model}: {where} {what} (not a save_pretrained or peft adapter folder); "
            f"{HOW_TO_GET_A_MODEL}"
        )
    from lamops.settings import ModelSpec

    try:
        return make_model(ModelSpec(source="pretrained", path=str(folder.resolve())))
    except Exception as e:  # a folder with broken or partial files
        raise ModelUnavailable(f"cannot load the model in {folder}: {type(e).__name__}: {e}") from None


def load_plans(model: str, cfg: Config):
    """The plan library (`lamops.agents.plans`) that goes with `model` as `load_model` resolves it: the
    folder's `plan_library.jsonl`, or the one logged with the registered version; None when there is none."""
    from lamops.agents.plans import PlanLibrary

    if model.startswith("models:/"):
        from lamops.registry.models import load_registered_plans

        return load_registered_plans(model)
    for folder in (Path(model).expanduser(), cfg.root / model):
        if (folder / "config.json").is_file():
            return PlanLibrary.load(folder)
    return None


def _load_registered(uri: str, cfg: Config) -> tuple[Any, Any]:
    from lamops import tracking

    match = _MODEL_URI.match(uri)
    if match is None:
        raise ModelUnavailable(f"{uri}: not a models:/NAME/VERSION or models:/NAME@ALIAS URI")
    store = tracking.tracking_uri(cfg)
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///") :]).is_file():
        # Asking MLflow would create an empty store there; there is nothing to find in it.
        raise ModelUnavailable(
            f"{uri}: no MLflow store at {store} (nothing registered yet); {HOW_TO_GET_A_MODEL}"
        )
    from mlflow.exceptions import MlflowException

    from lamops.registry.models import load_registered
    from mlflow import MlflowClient

    try:
        tracking.setup(cfg)
    except tracking.TrackingUnavailable as err:
        raise ModelUnavailable(f"{uri}: {err}") from err
    name, version, alias = match["name"], match["version"], match["alias"]
    try:
        client = MlflowClient()
        if alias:
            client.get_model_version_by_alias(name, alias)
        else:
            client.get_model_version(name, version)
    except MlflowException as e:
        what = f"alias @{alias}" if alias else f"version {version}"
        reason = (e.message or str(e)).splitlines()[0]
        raise ModelUnavailable(
            f"{uri}: registered model {name!r} has no {what} in {store} ({reason}); {HOW_TO_GET_A_MODEL}"
        ) from None
    try:
        return load_registered(uri)
    except Exception as e:  # registered, but its artifacts are gone or unreadable
        first = str(e).splitlines()[0] if str(e) else ""
        raise ModelUnavailable(
            f"{uri}: registered in {store} but cannot be loaded: {type(e).__name__}: {first}"
        ) from None
