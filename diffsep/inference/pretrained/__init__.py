"""Models bundled with diffsep, and the demo mixture.

``models.json`` lists each model: its file (our checkpoint format, fp16 weights), its model card,
the settings it is meant to be run with (sampler, warm-start partner) and its measured scores.
A bundled model is named by its key wherever a checkpoint path is accepted:

    diffsep.load_separator("diffsep-small")       # with its recommended settings
    python separate.py mix.wav -o out --model convtasnet-small

The demo (``demo/``) is a mixture of two freely licensed synthetic voices with its references,
made by ``tools/make_demo.py``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
INDEX = HERE / "models.json"


class UnknownModel(KeyError):
    """A name that is neither a file nor a bundled model."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class BundledModel:
    name: str
    file: str  # checkpoint file, relative to this package folder
    card: str  # model card (Markdown), relative to this package folder
    family: str  # diffsep | convtasnet
    summary: str  # one line for --list-models
    sampler: dict = field(default_factory=dict)  # SamplerSettings fields it is run with
    warm_start: str | None = None  # bundled partner whose estimate the diffusion starts from
    shifts: int = 1  # test-time shift averaging over this many input delays (diffsep.inference.shift_averaging)
    scores: dict = field(default_factory=dict)  # measured numbers (see the card), e.g. {"tt_si_sdri": 8.1}

    @property
    def path(self) -> Path:
        return HERE / self.file

    @property
    def card_path(self) -> Path:
        return HERE / self.card


@dataclass(frozen=True)
class Demo:
    mix: Path  # (N,) mixture
    sources: list[Path]  # K references, in the order of the mixture's sources
    sample_rate: int
    description: str


@lru_cache(maxsize=1)
def _index() -> dict:
    return json.loads(INDEX.read_text())


def bundled_models() -> dict[str, BundledModel]:
    """Every bundled model by name, the default first."""
    models = {name: BundledModel(name=name, **entry) for name, entry in _index()["models"].items()}
    default = default_model_name()
    return {default: models[default], **{k: v for k, v in models.items() if k != default}}


def default_model_name() -> str:
    """The model ``separate.py`` uses when none is given."""
    return _index()["default"]


def bundled(name: str) -> BundledModel:
    """The bundled model ``name``; UnknownModel lists the names there are."""
    models = bundled_models()
    if name not in models:
        raise UnknownModel(f"{name}: no such checkpoint file or bundled model (bundled: "
                           f"{', '.join(models)}; see separate.py --list-models)")
    return models[name]


def is_bundled(name: str) -> bool:
    return INDEX.is_file() and name in _index()["models"]


def demo() -> Demo:
    d = _index()["demo"]
    return Demo(mix=HERE / d["mix"], sources=[HERE / s for s in d["sources"]], sample_rate=d["sample_rate"],
                description=d["description"])
