import json

from diffsep.cli.curves import main
from diffsep.evaluation.learning_curves import read_curves


def _write(run, records):
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_validation_points_take_the_time_of_their_step_across_a_resume(tmp_path):
    run = tmp_path / "run"
    _write(run, [{"step": 10, "loss": 1, "time": 60.0}, {"step": 20, "loss": 1, "time": 120.0},
                 {"step": 20, "val_si_sdri": 1.5},
                 {"step": 30, "loss": 1, "time": 30.0},  # resumed: the clock restarted
                 {"step": 30, "val_si_sdri": 2.5, "val_tt_si_sdri": -1.0}])
    c = read_curves(run, ["val_si_sdri", "val_tt_si_sdri", "absent"])
    assert c["val_si_sdri"] == [(2.0, 20, 1.5), (2.5, 30, 2.5)]
    assert c["val_tt_si_sdri"] == [(2.5, 30, -1.0)] and "absent" not in c


def test_command_writes_the_figure_and_refuses_a_folder_without_metrics(tmp_path, capsys):
    run = tmp_path / "a"
    _write(run, [{"step": 5, "loss": 1, "time": 6.0}, {"step": 5, "val_si_sdri": 3.0}])
    assert main([str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000 and "3.00" in capsys.readouterr().out
    assert main([str(tmp_path), "-o", str(tmp_path / "d.png")]) == 2


def test_stages_join_end_to_end(tmp_path, capsys):
    """A+B: the second stage's minutes and steps follow the first stage's last training record."""
    from diffsep.evaluation.learning_curves import read_stages

    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, [{"step": 10, "loss": 1, "time": 60.0}, {"step": 10, "val_si_sdri": 1.0},
               {"step": 20, "loss": 1, "time": 180.0}])
    _write(b, [{"step": 5, "loss": 1, "time": 120.0}, {"step": 5, "val_si_sdri": 2.0}])
    c = read_stages([a, b], ["val_si_sdri"])
    assert c["val_si_sdri"] == [(1.0, 10, 1.0), (5.0, 25, 2.0)]
    assert main([f"{a}+{b}", "-o", str(tmp_path / "s.png")]) == 0
    assert "a+b val_si_sdri: 1 min 1.00, 5 min 2.00" in capsys.readouterr().out
    assert main([f"{a}+{tmp_path / 'none'}", "-o", str(tmp_path / "t.png")]) == 2
