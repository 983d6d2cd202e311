"""A run's logs: one JSON line per record in RUN_DIR/metrics.jsonl and TensorBoard scalars in
RUN_DIR/tb (TensorBoard is imported on the first record)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..storage.atomic import write_text_atomic


def _record(line: str) -> dict | None:
    """The record a metrics.jsonl line holds, or None when it holds none (cut short, damaged)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


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
        """Drop records written after ``step`` (a killed run resumed from an older checkpoint), and
        lines that are not a record, e.g. the half-written last line of a killed run (with a
        warning). The file is replaced atomically."""
        if not (self.enabled and self.path.is_file()):
            return
        keep, dropped = [], []
        for number, ln in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            record = _record(ln)
            if record is None:
                if ln.strip():
                    dropped.append(number)
            elif record["step"] <= step:
                keep.append(ln)
        if dropped:
            print(f"warning: {self.path}: dropped {len(dropped)} line(s) that are not complete records "
                  f"(line {', '.join(map(str, dropped[:5]))}{' ...' if len(dropped) > 5 else ''}; "
                  f"a write cut short)", file=sys.stderr)
        write_text_atomic(self.path, "".join(ln + "\n" for ln in keep))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
