"""Shared helpers for benchmark scripts: machine facts and the JSON-row results file."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def machine() -> dict:
    """Facts that make a figure comparable: cores, CPU model, torch threads, GPU name."""
    info = {"host_cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def append_row(name: str, figures: dict, path: Path | None = None) -> dict:
    """Print the figures and append one JSON row {benchmark, time, machine, figures} to results.jsonl."""
    row = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **figures}
    p = Path(path or os.environ.get("EMD_BENCH_RESULTS") or RESULTS)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    print(json.dumps(row, indent=2, default=str))
    return row
