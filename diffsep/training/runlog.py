"""A run's logs: one JSON line per record in RUN_DIR/metrics.jsonl and TensorBoard scalars in
RUN_DIR/tb (TensorBoard is imported on the first record)."""
from __future__ import annotations

import json
from pathlib import Path


class RunLog:
    """Scalars by step; does nothing when not ``enabled`` (every process but the main one)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._writer = None

    def write(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path.parent / "tb"))
        for k, v in scalars.items():
            self._writer.add_scalar(k, v, step)

    def trim(self, step: int) -> None:
        """Drop records written after ``step`` (a killed run resumed from an older checkpoint)."""
        if self.enabled and self.path.is_file():
            keep = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
            self.path.write_text("".join(ln + "\n" for ln in keep))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
