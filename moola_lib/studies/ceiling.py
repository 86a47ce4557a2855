"""The held-out ceiling of the embedded testbed: how well the simple arm can do on the embedded task.

Each replicate trains the simple models (``simple.fit_simple`` on ``simple.window_summaries``: logistic
regression and gradient boosting) on a fresh embedded labelled set of ``train_n`` windows (the default
set's period and class balance, market seed ``seed + r``: a new market per replicate) and tests them on
``test_n`` fresh, balanced windows of another market (seed ``seed + 10_000``, a long period that overlaps
no training market's labelled period). Cross-validation on 174 windows reports the same quantity with
~3-5 pp of fold noise; thousands of test windows leave only the training set's own variation, which the
replicates show. VALIDATION.md ("The embedded testbed") records the figure with its seed.

    python -m moola_lib.studies.ceiling [--difficulty 0.3] [--replicates 10] [--test-n 3000] [--seed 0]

Invalid settings are a ConfigError before any work (one line and exit status 2 on the command line).
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..transfer.folds import inner_split
from ..transfer.simple import SIMPLE_MODELS, fit_simple, window_summaries
from ..util import cli
from ..util.config import ConfigError

TEST_PERIOD = ("2022-01-03", "2024-06-30")  # fresh windows: 2.5 years hold ~4,500 episodes


def held_out_ceiling(
    difficulty: float = EMBEDDED_SET.difficulty,
    *,
    replicates: int = 10,
    train_n: int = 140,
    test_n: int = 3000,
    seed: int = 0,
    test_period: tuple[str, str] = TEST_PERIOD,
    history_days: int = 30,
) -> dict:
    """Balanced accuracy of each simple model on the fresh test windows: per replicate, mean and sd.
    ``history_days``: feature warm-up before each period (the training sets' markets start that many days
    before the labelled period, not at the default set's history start: the ceiling is a property of the
    process, and a short market is quicker)."""

    _check_settings(difficulty, replicates, train_n, test_n, seed)

    def market_start(day: str) -> str:
        return (pd.Timestamp(day) - pd.Timedelta(days=history_days)).strftime("%Y-%m-%d")

    test = synthetic_labelled_set(
        test_n,
        0.5,
        0.0,
        seed + 20_000,
        difficulty=difficulty,
        start=test_period[0],
        end=test_period[1],
        history_start=market_start(test_period[0]),
        market_seed=seed + 10_000,
    )
    Z_test = window_summaries(test.X, test.valid)
    scores: dict[str, list[float]] = {m: [] for m in SIMPLE_MODELS}
    for r in range(replicates):
        train = synthetic_labelled_set(
            train_n,
            seed=seed + r,
            difficulty=difficulty,
            history_start=market_start(EMBEDDED_SET.start),
            market_seed=seed + 1 + r,
        )
        Z = window_summaries(train.X, train.valid)
        fit, val = inner_split(np.arange(len(train)), train.y, train.groups, 0.2, seed=seed + r)
        for model in SIMPLE_MODELS:
            clf = fit_simple(model, Z, train.y, fit, val, seed=seed + r)
            scores[model].append(float(balanced_accuracy_score(test.y, clf.predict(Z_test))))
    return {
        "difficulty": difficulty,
        "seed": seed,
        "replicates": replicates,
        "train_n": train_n,
        "test_n": test_n,
        "test_period": list(test_period),
        **{
            m: {
                "mean": float(np.mean(s)),
                "sd": float(np.std(s, ddof=1)) if len(s) > 1 else 0.0,
                "per_replicate": [round(x, 4) for x in s],
            }
            for m, s in scores.items()
        },
    }


def _check_settings(difficulty: float, replicates: int, train_n: int, test_n: int, seed: int) -> None:
    """ConfigError for a setting that would give no figure (replicates < 1: a NaN mean) or fail late."""
    problems = [
        (math.isfinite(difficulty) and 0 <= difficulty <= 1, f"difficulty must lie in [0, 1], got {difficulty}"),
        (replicates >= 1, f"replicates must be >= 1, got {replicates}"),
        (train_n >= 20 and test_n >= 20, f"train_n and test_n must be >= 20, got {train_n} and {test_n}"),
        (0 <= seed < 2**31, f"seed must be in [0, 2**31), got {seed}"),
    ]
    for ok, message in problems:
        if not ok:
            raise ConfigError(f"ceiling: {message}")


def main(argv: list[str] | None = None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.cli.run``)."""
    return cli.run(_main, argv)


def _main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog="python -m moola_lib.transfer.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", type=float, default=EMBEDDED_SET.difficulty)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--train-n", type=int, default=140)
    parser.add_argument("--test-n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = held_out_ceiling(
        args.difficulty, replicates=args.replicates, train_n=args.train_n, test_n=args.test_n, seed=args.seed
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
