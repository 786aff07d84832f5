"""Checkpoints that carry their metadata (torchvision style) and load safely.

File layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "autous-checkpoint", "format_version": 1,
     "meta": "<CheckpointMeta as JSON>", "state_dict": {name: tensor}}
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from models.ctunet import build_model
from models.errors import CheckpointError

FORMAT = "autous-checkpoint"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "ctunet_lung3.pt"


class CheckpointMeta(BaseModel):
    """Everything needed to rebuild, run and judge a model, stored inside the file."""

    model_config = ConfigDict(extra="ignore")

    name: str
    arch: str = "ctunet"
    classes: list[str] = Field(min_length=2)
    input_spec: dict[str, Any]
    config: dict[str, Any]
    recipe: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    abstain_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    created: str = ""
    id: str = ""
    code_version: str = ""


def code_version() -> str:
    """The installed ``auto-us`` version (``0+unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("auto-us")
    except PackageNotFoundError:
        return "0+unknown"


def weights_id(state_dict: dict[str, torch.Tensor]) -> str:
    """Short sha256 over parameter names and values: identifies the weights, not the file."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:12]


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta) -> CheckpointMeta:
    """Write ``model`` + ``meta`` atomically; fills ``id``, ``created``, ``code_version``; returns the meta."""
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    meta = meta.model_copy(update={
        "id": weights_id(state),
        "created": meta.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": meta.code_version or code_version(),
    })
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "meta": meta.model_dump_json(), "state_dict": state}
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)  # RuntimeError when the file cannot be opened
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot write checkpoint ({getattr(exc, 'strerror', None) or exc})") from None
    return meta


def read_meta(path: str | Path) -> CheckpointMeta:
    """Only the metadata of a checkpoint (still loads the file; raises ``CheckpointError``)."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoints
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an Auto-US checkpoint (no '{FORMAT}' metadata)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})")
    try:
        meta = CheckpointMeta.model_validate_json(payload["meta"])
    except (KeyError, TypeError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: invalid checkpoint metadata ({first})") from None
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: checkpoint has no weights")
    return meta, state


def _check_state(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, "
                        f"config {tuple(expected[k].shape)})")
    if problems:
        raise CheckpointError(
            f"{path}: weights do not match the architecture config stored in the checkpoint "
            f"(checkpoint from another configuration or code version): {'; '.join(problems)}")


def load_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model from the stored arch/config, load its weights; returns ``(model.eval(), meta)``."""
    path = Path(path)
    meta, state = _read(path)
    if meta.config.get("num_classes", len(meta.classes)) != len(meta.classes):
        raise CheckpointError(f"{path}: config has num_classes={meta.config.get('num_classes')} "
                              f"but {len(meta.classes)} class names")
    try:
        model = build_model(meta.arch, meta.config)
    except (KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if exc.args else type(exc).__name__
        raise CheckpointError(f"{path}: cannot build architecture {meta.arch!r} from its config: {msg}") from None
    _check_state(path, model, state)
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def describe(meta: CheckpointMeta) -> dict[str, Any]:
    """A short JSON-able summary (id, name, classes) as tools report it."""
    return {"id": meta.id, "name": meta.name, "classes": list(meta.classes)}
