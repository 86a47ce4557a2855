"""The transfer protocol checked on known answers: ``python -m moola_lib.transfer.validate``.

Three experiments on the embedded market, every one through the protocol's own code (folds, probes,
corrected t-test, minimal detectable effect):

- ``null``: two arms that differ only in their random seed: linear probes on two random encoders of the
  same architecture, on the same folds. Over ``replicates`` labelled sets (each its own episodes), the
  primary test's false-positive rate should be near ``alpha`` (reported with its Clopper-Pearson CI).
- ``positive``: an encoder that really carries the label, trained supervised on ``positive_windows``
  extra labelled windows from a disjoint period (2024) of the same market, frozen and probed, against the
  baseline, ``positive_replicates`` times. Its detection rate is compared with the power the verdicts' own numbers
  imply: the power at the mean observed effect given each replicate's standard error, and the share of
  replicates whose effect exceeded their printed minimal detectable effect.
- ``real``: the real question on the embedded data: an encoder pretrained by masked reconstruction
  (at the scale ``pretrain_*`` sets; the labelled period is after its splits) against the baseline, every
  arm, with the learning curve.

``--quick`` runs a seconds-long version (the tests run it); the defaults fit the 30-minute budget on 2 CPU
cores (11 minutes measured on a shared 2-core VM, VALIDATION.md). Results go to a JSON file (``--json``) and a Markdown summary (``--markdown``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from ..cli import add_parameter_flags, parameters, run
from ..config import StrictConfig
from ..util.io import atomic_write_text, write_json
from ..testbed import EMBEDDED_SET, synthetic_labelled_set
from ..models import JadeEncoder, save_encoder
from ..pretrain import pretrain
from .config import TransferConfig
from .folds import fold_groups, inner_split, make_folds
from .probe import build_classifier, fit_classifier, pooled
from .protocol import Inputs, evaluate_arms, run_transfer
from .stats import compare
from .validation_report import markdown


@dataclass
class ValidationConfig(StrictConfig):
    """Sizes of the validation run (defaults: 11 minutes measured on 2 CPU cores, one thread)."""

    replicates: int = 20           # null experiment
    positive_replicates: int = 20
    n_labelled: int = EMBEDDED_SET.n   # the labelled sets: the embedded set's defaults, other window draws
    folds: int = 5
    repeats: int = 5
    epochs: int = 60               # transfer training epochs (baseline)
    hidden_size: int = 32          # encoder architecture of the null and positive experiments
    num_layers: int = 1
    positive_windows: int = 2000
    positive_epochs: int = 20
    pretrain_hidden_size: int = 64   # the real question's encoder
    pretrain_num_layers: int = 1
    pretrain_epochs: int = 6
    pretrain_start: str = "2024-04-01"
    real_repeats: int = 5
    real_fractions: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.5, 1.0])
    seeds_per_fold: int = 1
    labels_period: list[str] = dataclasses.field(default_factory=lambda: [EMBEDDED_SET.start, EMBEDDED_SET.end])
    history_start: str = EMBEDDED_SET.history_start
    seed: int = 0


QUICK = dict(replicates=2, positive_replicates=2, n_labelled=40, folds=3, repeats=1, epochs=3, hidden_size=8, positive_windows=80,
             positive_epochs=2, pretrain_hidden_size=8, pretrain_epochs=1, pretrain_start="2025-03-01",
             real_repeats=1, real_fractions=[0.5, 1.0], labels_period=["2025-07-01", "2025-07-14"],
             history_start="2025-06-24")


def _note(message: str) -> None:
    """A progress line on stderr (the run takes half an hour; stdout gets the summary)."""
    print(f"[validate {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _labelled(vc: ValidationConfig, replicate: int):
    """The embedded labelled set (``EMBEDDED_SET``) with its windows drawn by seed ``10_000 + replicate``."""
    lo, hi = vc.labels_period
    return synthetic_labelled_set(vc.n_labelled, EMBEDDED_SET.class_balance, EMBEDDED_SET.label_noise,
                                  seed=10_000 + replicate, difficulty=EMBEDDED_SET.difficulty, start=lo, end=hi,
                                  history_start=vc.history_start, market_seed=vc.seed)


def _transfer_config(vc: ValidationConfig, **overrides) -> TransferConfig:
    return TransferConfig(**{**dict(folds=vc.folds, repeats=vc.repeats, epochs=vc.epochs, fractions=[1.0],
                                    n_bootstrap=0, device="cpu", progress=False,
                                    seeds_per_fold=vc.seeds_per_fold, seed=vc.seed), **overrides})


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> list[float]:
    """Exact binomial (1 - alpha) CI of a rate k / n."""
    lo = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return [float(lo), float(hi)]


def _rate(hits: list[bool]) -> dict:
    return {"rate": float(np.mean(hits)), "k": int(np.sum(hits)), "n": len(hits),
            "ci": clopper_pearson(int(np.sum(hits)), len(hits))}


def null_control(vc: ValidationConfig) -> dict:
    """Probes on two random encoders (seeds differ only) on the same folds, ``replicates`` times."""
    cfg = _transfer_config(vc, arms=["baseline", "frozen", "random_frozen"])
    rows = []
    for r in range(vc.replicates):
        ls = _labelled(vc, r)
        groups = fold_groups(ls.groups, ls.start, ls.end)
        assign = make_folds(ls.y, groups, vc.folds, vc.repeats, seed=r)
        arch = dict(hidden_size=vc.hidden_size, num_layers=vc.num_layers)
        X, V = torch.as_tensor(ls.X), torch.as_tensor(ls.valid)
        fixed = {}
        for arm, key in (("frozen", 1), ("random_frozen", 2)):
            torch.manual_seed(vc.seed * 1000 + 2 * r + key)
            fixed[arm] = pooled(JadeEncoder(**arch), X, V)
        inputs = Inputs(data=(X, V, torch.as_tensor(ls.y)), encoder=None, fixed=fixed)
        runs = evaluate_arms(ls, inputs, cfg, assign, groups, arms=["frozen", "random_frozen"])
        d = compare(runs["frozen"]["folds"], runs["random_frozen"]["folds"], cfg.alpha, cfg.power)
        rows.append({"replicate": r, **{m: {k: d[m][k] for k in ("mean", "se", "p_value", "mde")}
                                        for m in ("balanced_accuracy", "log_loss")}})
        _note(f"null {r + 1}/{vc.replicates}: p = {d['balanced_accuracy']['p_value']:.3f}")
    out = {"replicates": rows}
    for m in ("balanced_accuracy", "log_loss"):
        out[f"false_positive_{m}"] = _rate([row[m]["p_value"] < cfg.alpha for row in rows])
    return out


def train_label_encoder(vc: ValidationConfig) -> tuple[JadeEncoder, dict]:
    """An encoder that carries the label: a classifier trained on ``positive_windows`` labelled windows
    of 2023-2024 (a period disjoint from the labelled set's), early-stopped on a fifth of them; its encoder."""
    extra = synthetic_labelled_set(vc.positive_windows, seed=vc.seed + 99, start="2023-01-01",
                                   end="2024-12-31", history_start="2022-12-01", market_seed=vc.seed)
    cfg = _transfer_config(vc, epochs=vc.positive_epochs, patience=5, lr=3e-3, batch_size=64)
    fit, val = inner_split(np.arange(len(extra)), extra.y, extra.groups, 0.2, vc.seed)
    template = JadeEncoder(hidden_size=vc.hidden_size, num_layers=vc.num_layers)
    model = build_classifier("baseline", template, 2, cfg.dropout, vc.seed)
    data = tuple(torch.as_tensor(a) for a in (extra.X, extra.valid, extra.y))
    history = fit_classifier(model, "baseline", data, fit, val, cfg, vc.seed)
    return model.encoder, {"windows": len(extra), "best_epoch": history["best_epoch"],
                           "best_val_loss": history["best_val_loss"]}


def positive_control(vc: ValidationConfig, workdir: Path) -> dict:
    """The label-carrying encoder, frozen and probed, against the baseline, ``positive_replicates`` times."""
    encoder, trained = train_label_encoder(vc)
    _note(f"label-carrying encoder trained: {trained}")
    save_encoder(encoder, workdir / "label_encoder.pt")
    cfg = _transfer_config(vc, arms=["baseline", "frozen"])
    rows = []
    for r in range(vc.positive_replicates):
        res = run_transfer(_labelled(vc, r), workdir / "label_encoder.pt", dataclasses.replace(cfg, seed=r))
        d = res["comparisons"]["frozen vs baseline"]["balanced_accuracy"]
        rows.append({"replicate": r, "mean": d["mean"], "se": d["se"], "df": d["df"], "p_value": d["p_value"],
                     "mde": d["mde"], "frozen": res["arms"]["frozen"]["summary"]["balanced_accuracy"]["mean"],
                     "baseline": res["arms"]["baseline"]["summary"]["balanced_accuracy"]["mean"]})
        _note(f"positive {r + 1}/{vc.positive_replicates}: {100 * d['mean']:+.1f} pp, p = {d['p_value']:.3g}")
    effect = float(np.mean([row["mean"] for row in rows]))
    implied = [_power(effect, row["se"], row["df"], cfg.alpha) for row in rows]
    return {"encoder": trained, "replicates": rows, "mean_effect": effect,
            "detection": _rate([row["p_value"] < cfg.alpha and row["mean"] > 0 for row in rows]),
            "implied_power": float(np.mean(implied)),
            "effect_above_printed_mde": _rate([row["mean"] >= row["mde"] for row in rows]),
            "mean_printed_mde": float(np.mean([row["mde"] for row in rows]))}


def _power(effect: float, se: float, df: int, alpha: float) -> float:
    """Power of the two-sided t-test (df) for a true ``effect`` at standard error ``se`` (noncentral t)."""
    if not (se > 0 and math.isfinite(se)):
        return math.nan
    crit, nc = stats.t.ppf(1 - alpha / 2, df), effect / se
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def real_question(vc: ValidationConfig, workdir: Path) -> dict:
    """Masked-reconstruction pretraining on the embedded market (splits end before the labelled period),
    then every arm against the baseline with the learning curve."""
    lo, hi = vc.labels_period
    pre = pretrain({"synthetic_start": vc.pretrain_start, "synthetic_end": lo, "hidden_size": vc.pretrain_hidden_size,
                    "num_layers": vc.pretrain_num_layers, "epochs": vc.pretrain_epochs, "batch_size": 256,
                    "lr": 3e-3, "warmup_epochs": 1, "seed": vc.seed, "device": "cpu", "progress": False,
                    "splits": _pretrain_splits(vc.pretrain_start, lo)}, workdir / "pretrain")
    _note(f"pretrained: best val loss {pre['best_val_loss']:.4f} in {pre['total_seconds']:.0f} s")
    cfg = _transfer_config(vc, repeats=vc.real_repeats, fractions=vc.real_fractions, n_bootstrap=1000)
    res = run_transfer(_labelled(vc, 0), workdir / "pretrain" / "checkpoint_best.pt", cfg)
    summary = {arm: a["summary"]["balanced_accuracy"] for arm, a in res["arms"].items()}
    return {"pretraining": {k: pre[k] for k in ("best_val_loss", "reference_losses", "total_seconds",
                                                 "epochs_completed")} | {"data": pre["data"]},
            "balanced_accuracy": {arm: {k: s[k] for k in ("mean", "ci_low", "ci_high")} for arm, s in summary.items()},
            "comparisons": {k: {m: {f: c[m][f] for f in ("mean", "ci_low", "ci_high", "p_value", "mde")
                                    if f in c[m]} | ({"p_holm": c[m]["p_holm"]} if "p_holm" in c[m] else {})
                                for m in ("balanced_accuracy", "log_loss")}
                            for k, c in res["comparisons"].items()},
            "learning_curve": {arm: [(p["n_train"], p["balanced_accuracy"]["mean"]) for p in pts]
                               for arm, pts in res["learning_curve"].items()},
            "verdict": res["verdict"], "seconds": res["seconds"]}


def _pretrain_splits(start: str, labels_start: str) -> dict:
    """Train / val / test thirds-ish of [start, labels_start): val and test one month each, all before
    the labelled period."""
    end = np.datetime64(labels_start, "D")
    return {"train": [start, str(end - 61)], "val": [str(end - 61), str(end - 30)], "test": [str(end - 30), str(end)]}


def validate(vc: ValidationConfig, workdir) -> dict:
    """All three experiments; the results dict (timings and machine included)."""
    workdir = Path(workdir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0, out = time.perf_counter(), {"config": dataclasses.asdict(vc)}
    try:
        for name, run in (("null", lambda: null_control(vc)), ("positive", lambda: positive_control(vc, workdir)),
                          ("real", lambda: real_question(vc, workdir))):
            t = time.perf_counter()
            out[name] = run()
            out[name]["seconds_total"] = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    out["seconds"] = time.perf_counter() - t0
    out["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "threads": 1}
    return out


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m moola_lib.transfer.validate", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long version (what the tests run)")
    parser.add_argument("--json", default="runs/validation/validation.json", help="results file")
    parser.add_argument("--markdown", help="also write the Markdown summary here")
    add_parameter_flags(parser, what="size (a field of ValidationConfig)")
    args = parser.parse_args(argv)
    options = {**(QUICK if args.quick else {}), **parameters(args)}
    vc = ValidationConfig.from_dict(options)
    with tempfile.TemporaryDirectory() as tmp:
        results = validate(vc, tmp)
    results["command"] = " ".join(["python -m moola_lib.transfer.validate", *(argv or [])])
    write_json(args.json, results)
    text = markdown(results)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    print(text)


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
