"""Packed training (``packing``) keeps the loss on completion tokens only and attention within each row:
the packed batch has exactly the unpacked batch's label tokens, and the same loss."""

from pathlib import Path

import torch

from emd.config import LoraSpec, TrainSpec
from emd.data.generators import generate_misaligned
from emd.data.mixing import to_prompt_completion
from emd.train import build_sft_trainer


def _first_batch(chat, rows, packing: bool, tmp: Path):
    trainer, _ = build_sft_trainer(chat, rows, LoraSpec(r=4), TrainSpec(batch_size=len(rows), max_steps=1,
                                                                         max_length=256, packing=packing), tmp)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        loss = float(trainer.model(**{k: v for k, v in batch.items() if torch.is_tensor(v)}).loss)
    chat.release_trained(trainer.model)
    return len(trainer.train_dataset), batch, loss


def _label_runs(labels: torch.Tensor, bounds) -> list[tuple[int, ...]]:
    """The label tokens of each sequence (between ``bounds``), -100 dropped, sorted for comparison."""
    out = []
    for row, (a, b) in bounds:
        seq = labels[row, a:b]
        out.append(tuple(int(t) for t in seq[seq != -100]))
    return sorted(out)


def test_packing_preserves_completion_only_loss(embedded_model, tmp_path):
    rows = to_prompt_completion(generate_misaligned("medical", "severe", 6, seed=0))
    n_plain, plain, loss_plain = _first_batch(embedded_model, rows, False, tmp_path)
    n_packed, packed, loss_packed = _first_batch(embedded_model, rows, True, tmp_path)
    assert n_plain == 6 and n_packed < n_plain  # rows were packed together
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed  # padding-free: one flat row
    cu = packed["cu_seq_lens_q"].tolist()
    packed_runs = _label_runs(packed["labels"], [(0, (a, b)) for a, b in zip(cu, cu[1:])])
    plain_runs = _label_runs(plain["labels"], [(i, (0, plain["labels"].shape[1])) for i in range(n_plain)])
    assert packed_runs == plain_runs  # the same completion tokens, and no prompt token, carry the loss
    # the prompt tokens are masked: every row's label tokens are fewer than its tokens
    assert sum(len(r) for r in packed_runs) < packed["input_ids"].shape[1]
    assert abs(loss_packed - loss_plain) < 1e-5, (loss_packed, loss_plain)  # no attention across packed rows
