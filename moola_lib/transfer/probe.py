"""One classifier on one split: build the arm's model, train it with early stopping on the inner
validation windows, predict the test windows.

Arms share the architecture: ``baseline`` and ``random_frozen`` get a random encoder of the pretrained
encoder's shape, ``frozen`` and ``finetune`` a copy of the pretrained one; ``frozen`` arms train the head
only, ``finetune`` unfreezes the encoder after ``unfreeze_epoch`` epochs at a lower learning rate.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..models import JadeClassifier, JadeEncoder, pooled_features
from .config import FROZEN, RANDOM_INIT, TransferConfig


def build_classifier(arm: str, encoder: JadeEncoder, n_classes: int, dropout: float,
                     seed: int) -> JadeClassifier:
    """The arm's classifier: a copy of the pretrained encoder, or a random one of the identical
    architecture for the baseline. The head starts from the same seed in every arm."""
    torch.manual_seed(seed)
    enc = JadeEncoder(**encoder.arch) if arm in RANDOM_INIT else copy.deepcopy(encoder)
    torch.manual_seed(seed + 1)
    return JadeClassifier(enc, n_classes=n_classes, dropout=dropout)


def _optimizer(model: JadeClassifier, arm: str, cfg: TransferConfig) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    groups = [{"params": head, "lr": cfg.lr}]
    if arm == "baseline":
        groups.append({"params": list(model.encoder.parameters()), "lr": cfg.lr})
    elif arm == "finetune":
        groups.append({"params": list(model.encoder.parameters()), "lr": cfg.lr * cfg.encoder_lr_scale})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _logits(model: JadeClassifier, X, V, idx, norm, features=None):
    """Training-time logits of windows ``idx``: the head on standardised pooled features,
    (embed - mu) / sd; with ``features`` (already standardised, frozen encoder) only the head runs."""
    if features is None:
        mu, sd = norm
        features = (model.embed(X[idx], V[idx]) - mu) / sd
    else:
        features = features[idx]
    return model.head(model.dropout(features))


def _raw_state(model: JadeClassifier, norm) -> dict:
    """A copy of the model's state with the standardisation (mu, sd) folded into the head, so that it
    takes raw pooled features like any JadeClassifier: W' = W / sd, b' = b - W' mu."""
    mu, sd = norm
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weight = state["head.weight"] / sd
    state["head.bias"] = state["head.bias"] - weight @ mu
    state["head.weight"] = weight
    return state


def fit_classifier(model: JadeClassifier, arm: str, data: tuple, fit_idx: np.ndarray, val_idx: np.ndarray,
                   cfg: TransferConfig, seed: int) -> dict:
    """Train ``model`` in place on ``fit_idx``; keep the weights of the epoch with the lowest loss on
    ``val_idx`` (early stopping after ``patience`` epochs without improvement). Returns the history.

    Mean-pooled LSTM outputs differ by ~1e-2 between windows, too little for a linear head to separate
    in a few dozen steps (a randomly initialised classifier sits at chance for many epochs). So in every
    arm the head sees the pooled features standardised with a fixed mean and sd, measured once on the
    fit windows with the initial encoder; the standardisation is folded into the head of the returned
    model. While the encoder is frozen its pooled features are computed once."""
    X, V, Y = data
    device = X.device
    fit_t = torch.as_tensor(fit_idx, device=device)
    val_t = torch.as_tensor(val_idx, device=device)
    n_classes = model.head.out_features
    weight = None
    if cfg.class_weighting:
        counts = torch.bincount(Y[fit_t], minlength=n_classes).float().clamp_min(1.0)
        weight = len(fit_idx) / (n_classes * counts)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = _optimizer(model, arm, cfg)
    gen = torch.Generator().manual_seed(seed)
    pooled = pooled_features(model, X, V)
    norm = (pooled[fit_t].mean(0), pooled[fit_t].std(0).clamp_min(1e-6))
    frozen_features = (pooled - norm[0]) / norm[1]
    best = {"val_loss": math.inf, "epoch": -1, "state": None}
    history, waited = [], 0
    for epoch in range(cfg.epochs):
        frozen = arm in FROZEN or (arm == "finetune" and epoch < cfg.unfreeze_epoch)
        model.encoder.requires_grad_(not frozen)
        features = frozen_features if frozen else None
        model.train()
        total = 0.0
        for b in torch.randperm(len(fit_idx), generator=gen).split(cfg.batch_size):
            idx = fit_t[b.to(device)]
            loss = loss_fn(_logits(model, X, V, idx, norm, features), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(_logits(model, X, V, val_t, norm, features), Y[val_t]))
        history.append({"epoch": epoch, "train_loss": total / len(fit_idx), "val_loss": val_loss})
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch, "state": _raw_state(model, norm)}
            waited = 0
        else:
            waited += 1
            if cfg.patience is not None and waited >= cfg.patience:
                break
    model.load_state_dict(best["state"])
    model.encoder.requires_grad_(True)
    model.eval()
    return {"best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "epochs_run": len(history),
            "history": history}


@torch.no_grad()
def predict(model: JadeClassifier, X, V, idx) -> np.ndarray:
    model.eval()
    return model(X[idx], V[idx]).argmax(-1).cpu().numpy()
