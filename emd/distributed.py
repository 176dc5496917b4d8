"""Several processes, one experiment: ``accelerate launch --num_processes N -m emd <entry> ...``.

Rank 0 runs the entry as usual (its MLflow run, references, evaluation, judging, registration).
Every other rank runs :func:`worker`: it waits for rank 0 to ask for a training, trains with it
(HF Trainer's DDP: each rank sees its shard of every batch, gradients are all-reduced), and waits
again, until rank 0 says stop. Rank 0 sends each training's inputs (rows, LoRA and train specs,
seed, adapters merged into the base) over a gloo group of its own, so ranks never disagree about
what to train, whatever rank 0 found in its caches. Nothing here changes the environment: the
launcher's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` are only read. See docs/training.md.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Callable

_GROUP: list[Any] = []  # the control group, created once per process
# Rank 0 may evaluate for hours while the others wait for their next training.
CONTROL_TIMEOUT = datetime.timedelta(hours=48)


def world_size() -> int:
    """Processes in this job (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_main() -> bool:
    """Whether this process is rank 0 (the one that tracks, evaluates and registers)."""
    return rank() == 0


def local_device():
    """The device this process trains on: ``cuda:<LOCAL_RANK>`` where a GPU is visible, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))
    return torch.device("cpu")


def _group():
    if not _GROUP:
        import torch.distributed as dist
        from accelerate import PartialState

        PartialState()  # the process group the Trainer will use (gloo on CPU, nccl on GPU)
        _GROUP.append(dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT))
    return _GROUP[0]


def broadcast(obj: Any = None) -> Any:
    """Rank 0's ``obj`` on every rank (pickled over the gloo control group)."""
    import torch.distributed as dist

    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]


def barrier() -> None:
    """Wait until every rank got here (no-op in a single process)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier(group=_group())


def send_training(message: dict) -> None:
    """Rank 0: tell the other ranks to join the training described by ``message``."""
    if world_size() > 1 and is_main():
        broadcast({"op": "train", **message})


def stop_workers() -> None:
    """Rank 0: release the other ranks (they exit); call once, when the entry is done or failed."""
    if world_size() > 1 and is_main():
        broadcast({"op": "stop"})


def worker(load_chat: Callable[[], Any], train: Callable[[Any, dict], None], log: Callable[[str], None] = print) -> int:
    """A rank other than 0: train whenever rank 0 asks, until it says stop; returns the trainings done."""
    chat, done = None, 0
    while True:
        msg = broadcast()
        if msg["op"] == "stop":
            return done
        if chat is None or list(chat.merged) != list(msg.get("merged", [])):
            chat = load_chat()
            for path in msg.get("merged", []):
                chat.merge_adapter(path)
        log(f"emd rank {rank()}: training {msg['name']} with rank 0")
        train(chat, msg)
        done += 1
