"""Constructor arguments recorded once, so that a network's defaults are written in one place.

    class Net(nn.Module):
        @capture_init
        def __init__(self, n_src: int = 2, width: int = 64): ...

    net = Net(3)
    net.init_kwargs                      # {"n_src": 3, "width": 64}
    type(net)(**net.init_kwargs)         # the same architecture

The decorator binds the call to the signature, applies the defaults and stores every argument by
name (positional ones included) after ``__init__`` returns; checkpoints keep ``init_kwargs`` as
config values, so lists are stored as tuples (a config round trip gives lists back, which every
network accepts). A subclass whose ``__init__`` is decorated too records its own arguments (the
outermost call stores last).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable


def _frozen(value: Any) -> Any:
    """Lists (and tuples) as tuples, recursively: comparable and the same after a config round trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def capture_init(init: Callable) -> Callable:
    """Decorate ``__init__`` so that the instance's ``init_kwargs`` holds every constructor
    argument by name, defaults applied. Refuses ``*args`` (they have no name to rebuild from);
    ``**kwargs`` are stored flat."""
    signature = inspect.signature(init)
    if any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        raise TypeError(f"capture_init: {init.__qualname__} takes *args, which cannot be captured by name")

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        captured = {}
        for name, value in list(bound.arguments.items())[1:]:  # [0] is self
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                captured.update({k: _frozen(v) for k, v in value.items()})
            else:
                captured[name] = _frozen(value)
        init(self, *args, **kwargs)
        self.init_kwargs = captured

    return wrapper

