"""Scan speed (issue 27): how long a fitted classifier takes to scan a month of 1-minute bars, per arm.

    python -m moola_lib.bench --scan [--arms frozen simple_logistic ...] [--threads 1] [--json PATH] [--quick]

Each arm is an ``ArmClassifier`` fitted on the embedded labelled set with a one-epoch recipe on an encoder of
the Jade size (``PRESETS``: 2 x 128, pretraining's default, with random weights: a prediction's arithmetic
does not depend on them), ``threads`` torch and BLAS threads (the recipe's ``cpu_threads``, which the
classifier predicts with). It then scans (``classifier.scan.scan``, stride 1) the month ``month`` of the
embedded market, from bars that start ``WARMUP_BARS`` before it (a user's month of bars with a day of
history): the features of those bars, the windows gathered, scored. Per arm: windows, seconds (the whole
scan, features included; ``features_seconds`` is their share, measured apart), windows/s, torch threads,
the machine's load average before and after. A trained arm averages ``seeds_per_fold`` members (1 here, as
in the CPU notebook; 3 in params/transfer_full.yaml: three times its LSTM time). Arms of the same kind and
size scan alike: ``baseline`` and ``lpft`` as ``finetune``, ``random_frozen`` as ``frozen``.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ..bars.synthetic import synthetic_ohlcv
from ..classifier.model import ArmClassifier
from ..classifier.scan import WARMUP_BARS, scan
from ..features.options import resolve_feature_options
from ..features.relativity import relativity_features
from ..labels.provenance import EncoderSource
from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..pretraining.checkpoints import save_encoder
from ..pretraining.model import JadeEncoder

ARMS = ("frozen", "simple_logistic", "simple_boosting", "finetune", "rocket_minirocket", "rocket_multirocket")
PRESETS = {
    "full": dict(month=("2025-09-01", "2025-09-30"), hidden_size=128, num_layers=2, arms=ARMS),
    "quick": dict(month=("2025-09-01", "2025-09-07"), hidden_size=128, num_layers=2, arms=ARMS),
    # a seconds-long smoke run for the tests
    "tiny": dict(month=("2025-09-02", "2025-09-02"), hidden_size=8, num_layers=1, arms=("frozen", "simple_logistic")),
}
RECIPE = dict(epochs=1, seeds_per_fold=1, device="cpu", progress=False)


def month_bars(month: tuple[str, str]):
    """The embedded market's bars of ``month``, starting ``WARMUP_BARS`` bars before its first day."""
    bars = synthetic_ohlcv(EMBEDDED_SET.history_start, EMBEDDED_SET.end, EMBEDDED_SET.market_seed)
    first = int(bars.index.searchsorted(pd.Timestamp(month[0], tz="UTC")))
    last = int(bars.index.searchsorted(pd.Timestamp(month[1], tz="UTC") + pd.Timedelta(days=1)))
    return bars.iloc[max(first - WARMUP_BARS, 0) : last]


def random_encoder(folder: Path, hidden_size: int, num_layers: int) -> EncoderSource:
    """An encoder file of the given size with random weights (seeded), read back as the classifier reads one."""
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=hidden_size, num_layers=num_layers)
    encoder.feature_options = resolve_feature_options()
    save_encoder(encoder, folder / "encoder.pt")
    return EncoderSource.load(folder / "encoder.pt")


def bench_arm(arm: str, labelled, source: EncoderSource, bars, month, threads: int) -> dict:
    """One arm fitted (one-epoch recipe, ``threads`` CPU threads), then the month scanned at stride 1, timed."""
    load = os.getloadavg()[0]
    began = time.perf_counter()
    clf = ArmClassifier(arm, encoder=source, config={**RECIPE, "cpu_threads": threads}).fit(labelled)
    fitted = time.perf_counter()
    scores = scan(clf, bars, month[0], month[1], stride=1)
    seconds = time.perf_counter() - fitted
    return {
        "arm": arm,
        "windows": len(scores),
        "seconds": seconds,
        "windows_per_s": len(scores) / seconds,
        "fit_seconds": fitted - began,
        "torch_threads": threads,
        "load_average_before": load,
        "load_average_after": os.getloadavg()[0],
    }


def run(preset: str = "full", arms=None, threads: int = 1) -> dict:
    """The benchmark as a dict (module docstring)."""
    p = PRESETS[preset]
    bars = month_bars(p["month"])
    relativity_features(bars.iloc[:2000])  # compile the numba scan outside the timing
    t0 = time.perf_counter()
    relativity_features(bars)
    features_seconds = time.perf_counter() - t0
    labelled = synthetic_labelled_set()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source = random_encoder(Path(folder), p["hidden_size"], p["num_layers"])
        for arm in arms or p["arms"]:
            rows.append(bench_arm(arm, labelled, source, bars, p["month"], threads))
    return {
        "preset": preset,
        "month": list(p["month"]),
        "bars": len(bars),
        "features_seconds": features_seconds,
        "encoder": {"hidden_size": p["hidden_size"], "num_layers": p["num_layers"]},
        "recipe": {**RECIPE, "cpu_threads": threads},
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "arms": rows,
    }


def format_table(r: dict) -> str:
    enc = r["encoder"]
    lines = [
        f"moola bench --scan ({r['preset']}): {r['month'][0]} .. {r['month'][1]}, {r['bars']:,} bars (features "
        f"{r['features_seconds']:.3f} s), encoder {enc['num_layers']} x {enc['hidden_size']}, {r['cpus']} CPUs, "
        f"torch {r['torch']}, {r['date']}",
        f"{'arm':<20} {'windows':>8} {'seconds':>8} {'windows/s':>10} {'threads':>8} {'load before/after':>18}",
    ]
    for a in r["arms"]:
        lines.append(
            f"{a['arm']:<20} {a['windows']:>8,} {a['seconds']:>8.1f} {a['windows_per_s']:>10,.0f} "
            f"{a['torch_threads']:>8} {a['load_average_before']:>9.1f} / {a['load_average_after']:<6.1f}"
        )
    return "\n".join(lines)
