"""The truth study's truth rests on one test market: how much does the market matter? (issue 28):
``python -m moola_lib.studies.truth_markets TRUTH_DIR OUT_DIR --markets 12``.

The truth study scores every set's models on one large test set from ONE unseen market. Its intervals are
over sets: they hold the test set fixed, so a market-level effect (this market's draw favouring one arm) is a
shift common to every set that no number of sets averages out. The verdicts' bias against that truth was
measured (``truth_heldout``: the same fitted models score a pretrained probe 2 pp better against the baseline
on held-out windows of the sets, each set its own market, than on the test market); a test market that
happens to disfavour the probe would read the same. This study measures it: on the first ``sets`` sets of
``size`` of a truth folder, every arm is fitted on the whole set exactly as the truth study fits it
(``truth.set_probabilities``: the same split and seeds; the scores on the test market equal the folder's) and
scored on the test market and on ``markets`` fresh markets of the generator (``market_size`` balanced windows
each, over the test period). Per arm against the baseline: the difference on the test market, on each fresh
market (the mean over sets; its window noise from the two halves of the market), the markets' spread beyond
that noise, the mean over fresh markets (interval: markets and sets), and, where the folder holds verdicts at
the size, their bias against either truth (paired by set).

OUT_DIR/markets.json after each set (atomically; resumable by set; one writer; other settings refused),
OUT_DIR/markets.md. The truth folder is read only.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from ..labels.testbed import synthetic_labelled_set
from ..pretraining.checkpoints import load_encoder
from ..transfer.config import TransferConfig
from ..transfer.intervals import per_window_scores
from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError
from ..util.io import write_json
from ..util.rundir import run_dir_claim
from .truth import TruthConfig, fitted_sets, set_probabilities, test_set, transfer_settings
from .truth_folds import add_arguments, load_study, study_folders, truth_folder, write_study
from .truth_report import difference, load_results
from .truth_verdicts import METRIC
from .validation_truth import concatenate

FRESH_MARKET = 60_000_000  # fresh market j: market seed 60,000,000 + j, draw seed 61,000,000 + j (apart from
FRESH_DRAW = 61_000_000  # every other study's markets: sets 5-7.x million, the test market 6,000,000)
TEST = "test"  # the truth study's test market


def fresh_market(tc: TruthConfig, j: int, size: int, period: list[str] | None = None):
    """Fresh market j: ``size`` balanced windows over ``period`` (default the truth study's test period; a
    market no set, encoder or test set reads), the market starting 30 days before it."""
    lo, hi = period or tc.test_period
    history = str(np.datetime64(lo, "D") - 30)
    return synthetic_labelled_set(
        size, 0.5, 0.0, FRESH_DRAW + j, start=lo, end=hi, history_start=history, market_seed=FRESH_MARKET + j
    )


def _scores(y: np.ndarray, proba: np.ndarray) -> float:
    return float(per_window_scores(y, proba, METRIC).mean())


def markets_set(tc: TruthConfig, cfg: TransferConfig, i: int, k: int, encoders: dict, markets: dict) -> dict:
    """Set (i, k)'s whole-set models on every market of ``markets`` (name -> LabelledSet; all scored in one
    pass): market -> key -> balanced accuracy; the test market's whole, every fresh market's two halves
    (even and odd windows: [first, second], whose difference measures the window noise)."""
    pool = markets[TEST]
    for name, market in markets.items():
        if name != TEST:
            pool = concatenate(pool, market)
    probas = set_probabilities(tc, cfg, i, k, encoders, pool)
    bounds = np.cumsum([len(m) for m in markets.values()])[:-1]
    out: dict[str, dict] = {name: {} for name in markets}
    for key, p in probas.items():
        for (name, market), q in zip(markets.items(), np.split(p, bounds)):
            if name == TEST:
                out[name][key] = _scores(market.y, q)
            else:
                out[name][key] = [_scores(market.y[h::2], q[h::2]) for h in (0, 1)]
    return out


def study_markets(tc: TruthConfig, wanted: dict) -> dict:
    """The truth study's test market and the fresh ones (``fresh_market``); one line when a fresh market's
    period cannot hold ``market_size`` separate episode windows."""
    markets = {TEST: test_set(tc)}
    for j in range(wanted["markets"]):
        try:
            markets[f"m{j}"] = fresh_market(tc, j, wanted["market_size"], wanted["fresh_period"])
        except ValueError as e:
            raise ConfigError(f"--market-size {wanted['market_size']}: {e}") from None
    return markets


def _encoders(truth_dir: Path, tc: TruthConfig) -> dict:
    encoders = {}
    for name in tc.encoders:
        path = truth_dir / "encoders" / name / "checkpoint_best.pt"
        if not path.exists():
            raise ConfigError(f"{path}: not found (the truth folder's encoder {name})")
        encoders[name] = load_encoder(path, input_size=None, hidden_size=None, num_layers=None)
    return encoders


def run_markets(truth_dir: Path, out: Path, wanted: dict, sets: int, jobs: int, log=print) -> dict:
    """Every set not yet in out/markets.json (``jobs`` at once: ``truth.fitted_sets``), written as each
    finishes; the results. Settings and markets are refused before the folder is made or anything fitted."""
    _, tc, _ = truth_folder(truth_dir, wanted["size"], sets)
    cfg = TransferConfig.from_dict(transfer_settings(wanted["arms"], tc.transfer))
    encoders = _encoders(truth_dir, tc)
    held = load_study(out / "markets.json", wanted, "sets")["sets"]
    markets = study_markets(tc, wanted) if any(str(k) not in held for k in range(sets)) else {}
    out.mkdir(parents=True, exist_ok=True)
    with run_dir_claim(out):  # one writer: a second process on the same folder would lose sets
        results = load_study(out / "markets.json", wanted, "sets")
        pending = [k for k in range(sets) if str(k) not in results["sets"]]
        i = tc.sizes.index(wanted["size"])
        for k, fitted, seconds in fitted_sets(tc, cfg, i, pending, encoders, markets, jobs, fit=markets_set):
            results["sets"][str(k)] = {"markets": fitted, "seconds": seconds}
            write_json(out / "markets.json", results)
            log(f"set {k}: {seconds:.0f} s")
    return results


def _pair_arrays(sets: dict, key: str, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    """(the difference on the test market per set, the fresh markets' differences [set, market, half])."""
    test = np.array([s["markets"][TEST][key] - s["markets"][TEST][baseline] for s in sets.values()])
    fresh = np.array(
        [[np.subtract(m[key], m[baseline]) for name, m in s["markets"].items() if name != TEST] for s in sets.values()]
    )
    return test, fresh


def market_spread(fresh: np.ndarray) -> dict:
    """The fresh markets' differences ([set, market, half]): per market the mean over sets and halves, their sd,
    the window noise in that sd (from the halves: var(d) = E[(first - second)^2] / 4 for the mean of two) and
    the markets' own sd beyond it, the mean over markets with its 95% interval (markets' and sets' variance)."""
    per_market = fresh.mean(axis=(0, 2))
    halves = fresh.mean(axis=0)
    noise = float(np.mean((halves[:, 0] - halves[:, 1]) ** 2) / 4)
    sd = float(np.std(per_market, ddof=1))
    per_set = fresh.mean(axis=(1, 2))
    se = math.sqrt(sd**2 / len(per_market) + float(np.var(per_set, ddof=1)) / len(per_set))
    t = float(stats.t.ppf(0.975, len(per_market) - 1))
    mean = float(per_market.mean())
    return {
        "per_market": per_market.tolist(),
        "sd": sd,
        "noise_sd": math.sqrt(noise),
        "market_sd": math.sqrt(max(0.0, sd**2 - noise)),
        "mean": mean,
        "ci": [mean - t * se, mean + t * se],
    }


def rows(truth: dict, markets: dict) -> dict:
    """Per key against the baseline: the test market's difference (over sets; and its largest gap to the truth
    folder's over the sets), the fresh markets' (``market_spread``), the test market's place among them and,
    where the folder holds verdicts of these sets, their bias against either truth (paired by set)."""
    size = str(markets["settings"]["size"])
    sets = dict(sorted(markets["sets"].items(), key=lambda kv: int(kv[0])))
    first = next(iter(sets.values()))["markets"][TEST]
    baseline = next(key for key in first if key.endswith(":baseline"))
    verdicts = truth.get("verdicts", {}).get(size, {})
    out = {}
    for key in (key for key in first if key != baseline):
        name = f"{key} - {baseline}"
        test, fresh = _pair_arrays(sets, key, baseline)
        stored = np.array(
            [truth["sets"][size][k]["scores"][key] - truth["sets"][size][k]["scores"][baseline] for k in sets]
        )
        row = {
            "sets": len(sets),
            "test": difference(test, np.zeros_like(test)),
            "truth_gap": float(np.max(np.abs(test - stored))),  # 0 where these fits are the folder's, bit for bit
            "fresh": market_spread(fresh),
        }
        row["test_rank"] = int(np.sum(np.array(row["fresh"]["per_market"]) < row["test"]["difference"]))
        judged = [k for k in sets if name in verdicts.get(k, {}).get("comparisons", {})]
        if len(judged) > 1:
            estimate = np.array([verdicts[k]["comparisons"][name]["mean"] for k in judged])
            at = [list(sets).index(k) for k in judged]
            row["bias_test"] = difference(estimate, test[at])
            row["bias_fresh"] = difference(estimate, fresh.mean(axis=(1, 2))[at])
        out[name] = row
    return out


def _ci(d: dict) -> str:
    low, high = d["ci"]
    mean = d["difference"] if "difference" in d else d["mean"]
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def markdown(truth: dict, markets: dict) -> str:
    """markets.md: the settings, one row per arm against the baseline (``rows``), the verdicts' bias."""
    s = markets["settings"]
    table = rows(truth, markets)
    lo, hi = s.get("fresh_period") or truth["config"]["test_period"]
    lines = [
        f"The truth on other markets: {s['truth_dir']}, sets of {s['size']}, arms {' '.join(s['arms'])}, "
        f"{s['markets']} fresh markets of {s['market_size']} windows over {lo} .. {hi} "
        "(`python -m moola_lib.studies.truth_markets`). "
        "pp; test market: the truth study's (mean [95% t interval over sets]); fresh markets: the mean over "
        "markets [95% interval: markets and sets], the markets' sd (the window noise in it, the markets' own sd "
        "beyond that noise), the fresh markets below the test market's difference.",
        "",
        "| difference | sets | test market | fresh markets | sd over markets | window noise | markets' own sd | "
        "markets below the test market |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in table.items():
        f = r["fresh"]
        lines.append(
            f"| {name} | {r['sets']} | {_ci(r['test'])} | {_ci(f)} | {100 * f['sd']:.1f} | "
            f"{100 * f['noise_sd']:.1f} | {100 * f['market_sd']:.1f} | {r['test_rank']} of {len(f['per_market'])} |"
        )
    gap = max(r["truth_gap"] for r in table.values())
    if gap > 1e-9:
        lines += [
            "",
            f"On the test market these fits' differences are the truth folder's within {100 * gap:.1f} pp on every "
            "set, not bit for bit (the folder's sets were fitted by earlier code; see VALIDATION.md).",
        ]
    judged = {name: r for name, r in table.items() if "bias_test" in r}
    if judged:
        lines += [
            "",
            "The verdicts' bias (their cross-validated estimate minus the truth, paired by set) against the test "
            "market's truth and against the fresh markets' mean:",
            "",
            "| difference | verdicts | bias against the test market | bias against the fresh markets |",
            "|---|---|---|---|",
            *(
                f"| {name} | {r['bias_test']['sets']} | {_ci(r['bias_test'])} | {_ci(r['bias_fresh'])} |"
                for name, r in judged.items()
            ),
        ]
    return "\n".join(lines) + "\n"


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth_markets",
        description="The truth study's sets scored on fresh markets: how much the one test market matters.",
    )
    add_arguments(parser, "markets.json, markets.md", "sets fitted at once, a process each")
    parser.add_argument("--markets", type=int, default=12, help="fresh markets (default 12)")
    parser.add_argument("--market-size", type=int, default=1000, help="windows a fresh market (default 1000)")
    parser.add_argument(
        "--fresh-period",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="the fresh markets' days (default the truth study's test period; e.g. the sets' own period)",
    )
    args = parser.parse_args(argv)
    files = ("markets.json", "markets.md")
    truth_dir, out = study_folders(args, files)
    if args.markets < 2 or args.market_size < 20:
        raise ConfigError("--markets must be >= 2 and --market-size >= 20")
    wanted = {
        "truth_dir": str(truth_dir),
        "size": args.size,
        "arms": args.arms,
        "markets": args.markets,
        "market_size": args.market_size,
        "fresh_period": args.fresh_period,
    }
    return write_study(
        out,
        files,
        "sets",
        wanted,
        args.report_only,
        lambda: run_markets(truth_dir, out, wanted, args.sets, args.jobs),
        lambda markets: markdown(load_results(truth_dir / "truth.json"), markets),
        "markets study",
    )


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
