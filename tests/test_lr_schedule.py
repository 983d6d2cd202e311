"""Learning-rate schedules: warm-up and cosine as a pure function, the hooks, resumable state."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from diffsep.training.optimization import build_scheduler
from diffsep.config.settings import ConfigError, load_config
from diffsep.training.lr_schedule import LRSchedule, lr_factor


@given(warmup=st.integers(0, 50), total=st.integers(1, 500), min_factor=st.floats(0, 0.5))
@settings(max_examples=60, deadline=None)
def test_warmup_then_cosine(warmup, total, min_factor):
    f = [lr_factor(s, warmup_steps=warmup, total_steps=total, kind="cosine", min_factor=min_factor)
         for s in range(max(total, warmup) + 5)]
    assert all(0 < x <= 1 for x in f[:warmup]) and f[:warmup] == sorted(f[:warmup])
    if warmup:
        assert f[warmup - 1] == 1.0 and math.isclose(f[0], 1 / warmup)
    after = f[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))  # never increases after warm-up
    if total > warmup:
        assert math.isclose(f[warmup], 1.0) and math.isclose(f[total], min_factor, abs_tol=1e-9)
    assert lr_factor(10 ** 6, warmup_steps=warmup, kind="none") == 1.0


def test_schedule_steps_the_optimizer_lr_and_resumes():
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, LRSchedule(opt, "cosine", lr=0.1, warmup_steps=4, total_steps=20, lr_min=0.01)

    opt, sched = make()
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        sched.after_step()
        sched.after_validation(1.0)  # ignored by a per-step schedule
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1]) and lrs[4] > lrs[9]
    opt2, sched2 = make()
    sched2.load_state_dict(sched.state_dict())
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]  # the optimizer state carries the lr
    sched.after_step(), sched2.after_step()
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
    assert math.isclose(opt.param_groups[0]["lr"], 0.1 * lr_factor(11, warmup_steps=4, total_steps=20,
                                                                     kind="cosine", min_factor=0.1))


def test_config_choices():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert build_scheduler(load_config(None, []), opt) is None  # constant lr: no scheduler at all
    assert build_scheduler(load_config(None, ["optim.warmup_steps=5"]), opt).kind == "none"
    with pytest.raises(ConfigError, match="warm-up is not combined with the plateau"):
        build_scheduler(load_config(None, ["optim.lr_schedule=plateau", "optim.warmup_steps=5"]), opt)
