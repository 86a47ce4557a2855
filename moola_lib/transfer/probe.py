"""One classifier on one split: build the arm's model, train it with early stopping on the inner
validation windows, predict class probabilities for the test windows.

Arms share the architecture; what differs is read from the arm's row (``arms.TABLE``): ``encoder``
"random" gets a random encoder of the pretrained encoder's shape (``baseline``), "pretrained" a copy of the
pretrained one (``finetune``); ``head_first`` keeps the encoder frozen for ``unfreeze_epoch`` epochs;
``scaled_encoder_lr`` trains the encoder at ``lr * encoder_lr_scale``. Frozen encoders (``frozen``,
``random_frozen``) are not trained here: their pooled features go to the deterministic linear probe
(``linear.fit_logistic``), see ``pooled`` and ``readouts``; ``probe_head`` (``lpft``) starts the head from
such a probe (``head_from_probe``) and trains the head at the encoder's scaled rate too. The parameters are
fitted on the fit windows only; the inner validation windows choose the epoch (as they choose the probe's C),
so every arm learns from the same windows.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..pretraining.model import JadeClassifier, JadeEncoder, embed_windows, pooled_features
from .arms import arm as arm_row
from .config import TransferConfig


def build_classifier(arm: str, encoder: JadeEncoder, n_classes: int, dropout: float, seed: int) -> JadeClassifier:
    """The arm's classifier: a copy of the pretrained encoder, or a random one of the identical
    architecture for the arms whose row says ``encoder="random"``. The head starts from the same seed in
    every arm."""
    torch.manual_seed(seed)
    enc = JadeEncoder(**encoder.arch) if arm_row(arm).encoder == "random" else copy.deepcopy(encoder)
    torch.manual_seed(seed + 1)
    return JadeClassifier(enc, n_classes=n_classes, dropout=dropout)


def pooled(encoder: JadeEncoder, X: torch.Tensor, V: torch.Tensor) -> np.ndarray:
    """Pooled features [N, 2H] (float64 numpy) of every window under a frozen encoder."""
    return embed_windows(encoder, X, V, X.device).astype(np.float64)


@torch.no_grad()
def head_from_probe(model: JadeClassifier, probe) -> None:
    """Set ``model``'s normalisation and head so that it decides as ``probe`` (``linear.fit_logistic``: a
    StandardScaler and a logistic regression on the model's own pooled features) does: in eval mode the
    classifier's probabilities equal the probe's (LP-FT starts fine-tuning from here). Batch normalisation
    divides by sqrt(var + eps); its weight undoes the eps so that it standardises exactly as the scaler."""
    scaler, logistic = probe[0], probe[-1]
    scale = torch.as_tensor(scaler.scale_, dtype=model.norm.running_var.dtype)
    model.norm.running_mean.copy_(torch.as_tensor(scaler.mean_))
    model.norm.running_var.copy_(scale**2)
    model.norm.weight.copy_(torch.sqrt(scale**2 + model.norm.eps) / scale)
    model.norm.bias.zero_()
    coef, intercept = (torch.as_tensor(a, dtype=model.head.weight.dtype) for a in (logistic.coef_, logistic.intercept_))
    if len(coef) == 1:  # binary: sigmoid(w.z + b) = softmax of the logits (-(w.z + b) / 2, (w.z + b) / 2)
        coef, intercept = torch.cat([-coef, coef]) / 2, torch.cat([-intercept, intercept]) / 2
    if coef.shape != model.head.weight.shape:
        raise ValueError(f"probe of shape {tuple(coef.shape)} does not fit the head {tuple(model.head.weight.shape)}")
    model.head.weight.copy_(coef)
    model.head.bias.copy_(intercept)


def _optimizer(model: JadeClassifier, arm: str, cfg: TransferConfig) -> torch.optim.Optimizer:
    row = arm_row(arm)
    if row.kind != "trained":
        raise ValueError(f"arm {arm!r} is not trained by SGD (its kind is {row.kind!r})")
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    scale = cfg.encoder_lr_scale if row.scaled_encoder_lr else 1.0
    groups = [{"params": head, "lr": cfg.lr * scale if row.probe_head else cfg.lr}]
    groups.append({"params": list(model.encoder.parameters()), "lr": cfg.lr * scale})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _logits(model: JadeClassifier, X, V, idx, features=None):
    """Logits of windows ``idx``; with ``features`` (pooled under a frozen encoder) only the
    normalisation and head run."""
    return model.classify(model.embed(X[idx], V[idx]) if features is None else features[idx])


def _epoch(model, opt, loss_fn, data, fit_t, features, cfg, gen) -> float:
    """One pass over the fit windows in random batches; returns the mean training loss."""
    X, V, Y = data
    model.train()
    if features is not None:
        model.encoder.eval()
    total = 0.0
    for b in torch.randperm(len(fit_t), generator=gen).split(cfg.batch_size):
        if len(b) < 2:  # batch normalisation needs two windows; a lone one waits for the next epoch
            continue
        idx = fit_t[b.to(fit_t.device)]
        loss = loss_fn(_logits(model, X, V, idx, features), Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total / len(fit_t)


@torch.no_grad()
def _calibrate_norm(model: JadeClassifier, X, V, fit_t, features=None) -> None:
    """Set the normalisation layer's statistics to the exact mean and variance of the fit windows' pooled
    features under the encoder as it is now. The running averages of batch normalisation lag behind an
    encoder that changes every step (a few batches an epoch), and the stale statistics made validation
    losses explode and early stopping keep a near-constant epoch-0 model on some folds."""
    model.eval()
    pooled = features[fit_t] if features is not None else pooled_features(model, X[fit_t], V[fit_t])
    model.norm.running_mean.copy_(pooled.mean(0))
    model.norm.running_var.copy_(pooled.var(0, unbiased=True))


def _loss_fn(y_fit: torch.Tensor, n_classes: int, class_weighting: bool) -> nn.CrossEntropyLoss:
    """Cross-entropy, with class weights n / (n_classes * count) of the fit windows when ``class_weighting``."""
    weight = None
    if class_weighting:
        counts = torch.bincount(y_fit, minlength=n_classes).float().clamp_min(1.0)
        weight = len(y_fit) / (n_classes * counts)
    return nn.CrossEntropyLoss(weight=weight)


def fit_classifier(
    model: JadeClassifier,
    arm: str,
    data: tuple,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TransferConfig,
    seed: int,
) -> dict:
    """Train ``model`` (an arm of kind "trained") in place on ``fit_idx``; keep the weights of the
    epoch with the lowest loss on ``val_idx`` (early stopping after ``patience`` epochs without
    improvement). While the encoder is frozen its pooled features are computed once. Returns the history."""
    X, V, Y = data
    fit_t, val_t = (torch.as_tensor(i, device=X.device) for i in (fit_idx, val_idx))
    loss_fn = _loss_fn(Y[fit_t], model.head.out_features, cfg.class_weighting)
    opt = _optimizer(model, arm, cfg)
    gen = torch.Generator().manual_seed(seed)
    head_epochs = cfg.unfreeze_epoch if arm_row(arm).head_first else 0
    # the frozen encoder's pooled features, for the head-only epochs (no other fit reads them)
    frozen_features = pooled_features(model, X, V) if head_epochs > 0 else None
    best = {"val_loss": math.inf, "epoch": -1, "state": None}
    history, waited = [], 0
    for epoch in range(cfg.epochs):
        frozen = epoch < head_epochs
        model.encoder.requires_grad_(not frozen)
        features = frozen_features if frozen else None
        train_loss = _epoch(model, opt, loss_fn, data, fit_t, features, cfg, gen)
        _calibrate_norm(model, X, V, fit_t, features)
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(_logits(model, X, V, val_t, features), Y[val_t]))
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if val_loss < best["val_loss"]:
            best = {
                "val_loss": val_loss,
                "epoch": epoch,
                "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            }
            waited = 0
        else:
            waited += 1
            if cfg.patience is not None and waited >= cfg.patience:
                break
    if best["state"] is None:  # every validation loss NaN or inf: the weights diverged
        raise FloatingPointError(
            f"{arm}: the validation loss was never finite in {len(history)} epoch(s) "
            f"(lr={cfg.lr:g} too large?); lower lr"
        )
    model.load_state_dict(best["state"])
    model.encoder.requires_grad_(True)
    model.eval()
    return {
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "epochs_run": len(history),
        "history": history,
    }


@torch.no_grad()
def predict_proba(model: JadeClassifier, X, V, idx) -> np.ndarray:
    """Class probabilities [len(idx), C] (eval mode)."""
    model.eval()
    return torch.softmax(model(X[idx], V[idx]).float(), dim=-1).cpu().numpy().astype(np.float64)
