"""Model locations: local checkpoint files, models bundled with the package (by name, see
:mod:`diffsep.inference.pretrained`), or ``hf://owner/repo[/path/in/repo]`` on the Hugging Face Hub
(downloaded once into the huggingface_hub cache, then read from there, also offline)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..storage.checkpoint import CheckpointError

HF_PREFIX = "hf://"
DEFAULT_HUB_FILE = "checkpoint.pt"  # the file name of the released DiffSep model (hf://fakufaku/diffsep)


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """``hf://owner/repo[/file]`` -> (repo_id, filename); filename defaults to checkpoint.pt."""
    parts = [p for p in spec[len(HF_PREFIX):].split("/") if p]
    if len(parts) < 2:
        raise CheckpointError(f"{spec}: expected hf://owner/repo[/file]")
    return "/".join(parts[:2]), "/".join(parts[2:]) or DEFAULT_HUB_FILE


@dataclass(frozen=True)
class ModelLocation:
    """Where a model named on a command line is: its local file, and the bundled model's entry
    (its recommended sampler settings and warm-start partner) when it is one."""
    spec: str
    path: Path
    bundled: object | None = None  # a diffsep.inference.pretrained.BundledModel


def locate(spec: str | Path) -> ModelLocation:
    """Resolve a model name once: a bundled model's name, a file as given, or a Hub file fetched
    through huggingface_hub (``hf://owner/repo[/file]``). A bundled model's name means the bundled
    model even where a file of that name lies in the working directory (a file that shadowed it
    would be run in its place unnoticed): write a path (``./NAME``) for the file. Raises
    CheckpointError with a plain reason (no such file or bundled model, offline, not on the Hub)."""
    from . import pretrained

    if isinstance(spec, str) and pretrained.is_bundled(spec):
        entry = pretrained.bundled(spec)
        return ModelLocation(spec, entry.path, entry)
    spec = str(spec)
    if not spec.startswith(HF_PREFIX):
        path = Path(spec)
        if path.is_file():
            return ModelLocation(spec, path)
        raise CheckpointError(f"{spec}: no such checkpoint file or bundled model (bundled: "
                              f"{', '.join(pretrained.bundled_models())}; Hub models are written "
                              f"hf://owner/repo[/file])")
    repo_id, filename = parse_hub_spec(spec)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError)
    except ImportError:  # pragma: no cover - a declared dependency
        raise CheckpointError(f"{spec}: huggingface_hub is not installed") from None
    try:
        return ModelLocation(spec, Path(hf_hub_download(repo_id=repo_id, filename=filename)))
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{spec}: cannot reach the Hugging Face Hub (no network or offline "
                              f"mode) and the file is not in the local cache; download it on a "
                              f"machine with network access or pass a local checkpoint path") from None
    except EntryNotFoundError:
        raise CheckpointError(f"{spec}: the Hub repository {repo_id} has no file {filename}") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{spec}: no Hub repository {repo_id} (or it is private)") from None
    except OSError as e:
        raise CheckpointError(f"{spec}: download failed ({e})") from None


def resolve_model(spec: str | Path) -> Path:
    """The local file of a model (see :func:`locate`)."""
    return locate(spec).path
