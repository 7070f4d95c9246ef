"""Crash-safe files in a run folder: atomic writes, safetensors weights, resumable trainer state.

Every file is written to a temporary name in the same folder, fsynced, then renamed over the old one,
so a reader sees either the old or the new file, never a torn one. Weights are safetensors; the
trainer state (optimizer, RNG states, counters, metrics history) is a plain dict read back with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .errors import RunError

CHECKPOINT_DIR = "checkpoint"
WEIGHTS_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
BEST_FILE = "best.safetensors"  # in checkpoint/: the best validation loss's weights, when not the last epoch's


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it back at once
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import, before any thread could be creating files


def temporary_dir(root: Path, prefix: str) -> Path:
    """A new hidden folder ``root/.PREFIX.xxxx.tmp`` to fill, then rename into place; with the permissions of
    a folder made by mkdir (mkdtemp's own 0700 would stay on the run folder after the rename)."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{prefix}.", suffix=".tmp"))
    tmp.chmod(0o777 & ~UMASK)
    return tmp


@contextlib.contextmanager
def filled_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A ``temporary_dir`` to fill and rename into place inside the block; removed if the block fails (e.g. the
    disk is full), so an interrupted write leaves nothing behind."""
    tmp = temporary_dir(root, prefix)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def naming_errors(path: str | Path) -> Iterator[None]:
    """Re-raise an OSError from inside as one about ``path``, the file the user asked for, not a temporary
    file beside it (so an error message names a path the user knows)."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and rename it to ``path``, so that a
    crash leaves either the old file or the new one. An OSError (a read-only or missing place, a folder of
    that name) names ``path``, not the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError names the folder that cannot be made
    with naming_errors(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~UMASK)  # the permissions of a file made by open(), not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` written to ``path`` atomically (``atomic_write``)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def weights_bytes(model: torch.nn.Module, metadata: dict[str, Any]) -> bytes:
    """The model's state dict as safetensors bytes; ``metadata`` values are stored as JSON strings."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(state, metadata={k: json.dumps(v) for k, v in metadata.items()})


def trainer_bytes(state: dict[str, Any]) -> bytes:
    """``torch.save(state)`` as bytes: serialised in memory, since torch.save into a file turns a failed write
    (e.g. a full disk) into a RuntimeError that names neither the file nor the cause."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a safetensors file, with a RunError if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing: the run folder has no saved weights (was training started?)")
    data = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError) as err:
        raise RunError(f"{path} is damaged ({err}); resume from a checkpoint in {CHECKPOINT_DIR}/") from None
    metadata = {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}
    return tensors, metadata


def load_matching_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path, config: Path) -> None:
    """``module.load_state_dict(tensors)`` with a one-line RunError if the tensors belong to another config."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    reshaped = [k for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if missing or unexpected or reshaped:
        first = reshaped[0] if reshaped else None
        detail = (
            f"{first}: saved {tuple(tensors[first].shape)}, config builds {tuple(own[first].shape)}"
            if first
            else f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
        raise RunError(
            f"{source} does not match {config.name}: {len(reshaped)} tensors of another shape, {len(missing)} "
            f"missing, {len(unexpected)} unexpected ({detail}); was config.yaml edited or copied from another run?"
        )
    module.load_state_dict(tensors)


def read_trainer_state(path: Path) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():  # a file pickled by other code (protocol > 2) makes torch warn before it
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)  # refuses it: we say why
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many types for damaged files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = first_line if len(first_line) <= 120 else first_line[:120].rsplit(" ", 1)[0] + " ..."
        raise RunError(f"{path} is damaged or holds objects that safe loading refuses ({reason})") from None


def save_checkpoint(run_dir: Path, epoch: int, weights: bytes, trainer_state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoint/epoch-NNNN/`` atomically (a temp folder renamed into place); keep the newest ``keep``."""
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epoch:04d}"
    with filled_dir(root, f"epoch-{epoch:04d}") as tmp:
        atomic_write_bytes(tmp / WEIGHTS_FILE, weights)
        atomic_write_bytes(tmp / TRAINER_FILE, trainer_bytes(trainer_state))
        if final.exists():  # a rerun of an epoch after resume: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files and folders that a killed write left in a run folder."""
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (temporary folders of interrupted writes are ignored)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch-"))


def load_latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any], list[str]]:
    """The newest checkpoint that loads: (folder, weights, trainer state, messages about skipped ones)."""
    skipped: list[str] = []
    for folder in reversed(list_checkpoints(run_dir)):
        try:
            weights, _ = read_weights(folder / WEIGHTS_FILE)
            state = read_trainer_state(folder / TRAINER_FILE)
        except RunError as err:
            skipped.append(f"skipped damaged checkpoint {folder.name}: {err}")
            continue
        return folder, weights, state, skipped
    raise RunError(
        f"{run_dir} has no loadable checkpoint in {CHECKPOINT_DIR}/; start a new run without --resume"
        + (f" ({'; '.join(skipped)})" if skipped else "")
    )
