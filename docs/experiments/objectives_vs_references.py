"""Briefly pretrain each pretext objective on the embedded market (CPU) and compare its best checkpoint
with the objective's reference predictors on the fixed val and test masks, per window (paired
differences), with a 95% t-interval over the non-overlapping windows (stride 105) and the smallest
difference the comparison could detect (80% power, 5% two-sided: 2.8 standard errors).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python docs/experiments/objectives_vs_references.py OUT_DIR EPOCHS [SEED]

Prints JSON; OUT_DIR receives one run directory per objective. VALIDATION.md, "Pretext objectives".
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretrain import load_pretrain_data, pretrain
from moola_lib.pretraining.trainer import Trainer

BASE = {"synthetic_start": "2024-10-01", "synthetic_end": "2025-01-31", "stride": 105, "hidden_size": 32,
        "num_layers": 2, "epochs": int(sys.argv[2]), "batch_size": 32, "lr": 3e-3, "warmup_epochs": 1,
        "device": "cpu", "progress": False, "seed": int(sys.argv[3]) if len(sys.argv) > 3 else 42,
        "splits": {"train": ["2024-10-01", "2025-01-01"], "val": ["2025-01-01", "2025-01-16"],
                   "test": ["2025-01-16", "2025-02-01"]}}


def compare(trainer, preds, split):
    """Per-window losses of the model and the references on the split's fixed masks, paired differences."""
    starts, masks = trainer.starts[split], trainer.eval_masks[split]
    xb = trainer.windows(trainer.X, starts)
    with torch.no_grad():   # per window and feature: Huber over the hidden steps
        per_wf = {k: ((F.huber_loss(p(xb, masks).float(), xb, reduction="none") * masks.unsqueeze(-1)).sum(1)
                      / masks.sum(1, keepdim=True)).numpy() for k, p in preds.items()}
    refs = [k for k in per_wf if k != "model"]
    best = np.argmin(np.stack([per_wf[k].mean(0) for k in refs]), axis=0)   # per feature, chosen on this split
    per_wf["better_reference"] = np.stack([per_wf[k] for k in refs])[best, :, np.arange(best.size)].T
    per_window = {k: v.mean(1) for k, v in per_wf.items()}
    row = {"windows": len(starts), "loss": {k: float(v.mean()) for k, v in per_window.items()}}
    for ref, losses in per_window.items():
        if ref == "model":
            continue
        d = per_window["model"] - losses                     # < 0: the model is better
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
        row[f"model_minus_{ref}"] = {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
                                     "relative": float(d.mean() / losses.mean()),
                                     "smallest_detectable": float(2.8 * d.std(ddof=1) / np.sqrt(len(d)))}
    return row


out = {}
data = load_pretrain_data(BASE)
for objective in ("forecast", "masked"):
    cfg = PretrainConfig.from_dict({**BASE, "objective": objective})
    t0 = time.time()
    res = pretrain(cfg, f"{sys.argv[1]}/{objective}", data=data)
    trainer = Trainer(cfg, data, torch.device("cpu"))
    best = torch.load(f"{sys.argv[1]}/{objective}/checkpoint_best.pt", weights_only=True)
    trainer.model.load_state_dict(best["model"])
    trainer.model.eval()
    X, valid, tr = trainer.X, trainer.valid, data.slices["train"]
    preds = {"model": trainer.predict, **trainer.objective.reference_predictors(X[tr][valid[tr]].mean(dim=0))}
    row = {"seconds": round(time.time() - t0, 1), "best_epoch": res["best_epoch"], "epochs": res["epochs_completed"],
           "train_windows": res["data"]["splits"]["train"]["windows"]}
    for split in ("val", "test"):
        row[split] = compare(trainer, preds, split)
    out[objective] = row
print(json.dumps(out, indent=1))
