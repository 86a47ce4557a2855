"""The truth study's truth rests on one test market: how much does the market matter? (issue 28):
``python -m moola_lib.studies.truth_markets TRUTH_DIR OUT_DIR --markets 12``.

The truth study scores every set's models on one large test set from ONE unseen market. Its intervals are
over sets: they hold the test set fixed, so a market-level effect (this market's draw favouring one arm) is a
shift common to every set that no number of sets averages out. The verdicts' bias against that truth was
measured (``truth_heldout``: the same fitted models score a pretrained probe 2 pp better against the baseline
on held-out windows of the sets, each set its own market, than on the test market); a test market that
happens to disfavour the probe would read the same. This study measures it: on the first ``sets`` sets of
``size`` of a truth folder, every arm is fitted on the whole set exactly as the truth study fits it
(``truth.set_probabilities``: the same split and seeds; on the test market the folder's scores, but for a
trained arm's float rounding under other code or threads: ``truth_gap``) and
scored on the test market and on ``markets`` fresh markets of the generator (``market_size`` balanced windows
each, over the test period). Per arm against the baseline: the difference on the test market, on each fresh
market (the mean over sets; its window noise from the two halves of the market), the markets' spread beyond
that noise, the mean over fresh markets (interval: markets and sets), and, where the folder holds verdicts at
the size, their bias against each truth (paired by set). ``fresh_period`` draws the fresh markets over other
days (the sets' own period: the same calendar, so the same trend price, other markets); ``own_market`` N also
scores each set's models on N windows of the set's own market and period drawn anew, less every one sharing a
bar with a window of the set (fresh windows of the very market the set came from, as its held-out windows are).

OUT_DIR/markets.json after each set (atomically; resumable by set; one writer; other settings refused),
OUT_DIR/markets.md. The truth folder is read only. On the testbed (20 sets of 174) the test market is a typical
one (the markets' own sd beyond window noise 0-0.4 pp for the neural pairs), and the verdicts' bias stands
against the fresh markets, the sets' own months and the sets' own markets alike (VALIDATION.md).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ..pretraining.checkpoints import load_encoder
from ..transfer.config import TransferConfig
from ..transfer.intervals import per_window_scores
from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError
from ..util.io import write_json
from ..util.rundir import run_dir_claim
from .truth import (
    TruthConfig,
    fitted_sets,
    labelled_set,
    period_windows,
    set_probabilities,
    set_seed,
    test_set,
    transfer_settings,
)
from .truth_folds import add_arguments, load_study, study_folders, truth_folder, write_study
from .truth_report import difference, interval_text, load_results
from .truth_verdicts import METRIC
from .validation_truth import concatenate, subset

FRESH_MARKET = 60_000_000  # fresh market j: market seed 60,000,000 + j, draw seed 61,000,000 + j (apart from
FRESH_DRAW = 61_000_000  # every other study's markets: sets 5-7.x million, the test market 6,000,000)
OWN_DRAW = 62_000_000  # a set's own market drawn anew: draw seed 62,000,000 + the set's seed
TEST = "test"  # the truth study's test market
OWN = "own"  # the set's own market (``OwnMarket``)


@dataclass(frozen=True)
class OwnMarket:
    """In ``markets``: stands for each set's own market, ``size`` windows drawn anew (``own_market``)."""

    size: int


def own_market(tc: TruthConfig, i: int, k: int, size: int):
    """Fresh windows of set (i, k)'s own market and period: ``size`` balanced windows drawn with another seed,
    less every one that shares a bar with a window of the set (so none is a training window)."""
    train = labelled_set(tc, i, k)
    seed = set_seed(tc.sizes[i], k)
    drawn = period_windows(size, tc.period, OWN_DRAW + seed, seed)
    shared = (drawn.start.values[:, None] <= train.end.values[None, :]) & (
        drawn.end.values[:, None] >= train.start.values[None, :]
    )
    return subset(drawn, ~shared.any(axis=1))


def fresh_market(tc: TruthConfig, j: int, size: int, period: list[str] | None = None):
    """Fresh market j: ``size`` balanced windows over ``period`` (default the truth study's test period; a
    market no set, encoder or test set reads)."""
    return period_windows(size, period or tc.test_period, FRESH_DRAW + j, FRESH_MARKET + j)


def _scores(y: np.ndarray, proba: np.ndarray) -> float:
    return float(per_window_scores(y, proba, METRIC).mean())


def markets_set(tc: TruthConfig, cfg: TransferConfig, i: int, k: int, encoders: dict, markets: dict) -> dict:
    """Set (i, k)'s whole-set models on every market of ``markets`` (name -> LabelledSet, or ``OwnMarket``: the
    set's own; all scored in one pass): market -> key -> balanced accuracy; the test market's whole, every other
    market's two halves (even and odd windows: [first, second], whose difference measures the window noise)."""
    markets = {n: own_market(tc, i, k, m.size) if isinstance(m, OwnMarket) else m for n, m in markets.items()}
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
    """The truth study's test market, the fresh ones (``fresh_market``) and, with ``own_market``, the sets' own
    (``OwnMarket``: drawn per set; set 0's is drawn here as a check); one line when a market's period cannot
    hold the separate episode windows asked for."""
    markets = {TEST: test_set(tc)}
    try:
        for j in range(wanted["markets"]):
            markets[f"m{j}"] = fresh_market(tc, j, wanted["market_size"], wanted["fresh_period"])
    except ValueError as e:
        raise ConfigError(f"--market-size {wanted['market_size']}: {e}") from None
    if wanted.get("own_market"):
        try:
            own_market(tc, tc.sizes.index(wanted["size"]), 0, wanted["own_market"])
        except ValueError as e:
            raise ConfigError(f"--own-market {wanted['own_market']}: {e}") from None
        markets[OWN] = OwnMarket(wanted["own_market"])
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
    # read once before the folder is made (other settings refused, and the markets drawn only if sets remain,
    # so a refused run leaves no folder), and again under the claim: the one writer's view
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
        [
            [np.subtract(m[key], m[baseline]) for name, m in s["markets"].items() if name not in (TEST, OWN)]
            for s in sets.values()
        ]
    )
    return test, fresh


def market_spread(fresh: np.ndarray) -> dict:
    """The fresh markets' differences ([set, market, half]): per market the mean over sets and halves, their sd,
    the window noise in that sd (from the halves: var(d) = E[(first - second)^2] / 4 for the mean of two) and
    the markets' own sd beyond it, the mean over markets ("difference") with its 95% interval (markets' and
    sets' variance)."""
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
        "difference": mean,
        "ci": [mean - t * se, mean + t * se],
    }


def _verdict_bias(verdicts: dict, name: str, truths: dict[str, np.ndarray]) -> dict:
    """The verdicts' bias against each truth of ``truths`` (name -> per set, keyed like ``verdicts``' sets in
    the study's set order), paired by set: {"bias_" + truth name: ``difference``}; {} with fewer than 2."""
    order = list(next(iter(truths.values())).keys())
    judged = [k for k in order if name in verdicts.get(k, {}).get("comparisons", {})]
    if len(judged) < 2:
        return {}
    estimate = np.array([verdicts[k]["comparisons"][name]["mean"] for k in judged])
    return {f"bias_{t}": difference(estimate, np.array([v[k] for k in judged])) for t, v in truths.items()}


def rows(truth: dict, markets: dict) -> dict:
    """Per key against the baseline: the test market's difference (over sets; and its largest gap to the truth
    folder's over the sets), the fresh markets' (``market_spread``), the test market's place among them, the
    sets' own markets' (when scored: against the fresh markets, paired by set) and, where the folder holds
    verdicts of these sets, their bias against each truth (paired by set)."""
    size = str(markets["settings"]["size"])
    sets = dict(sorted(markets["sets"].items(), key=lambda kv: int(kv[0])))
    scored = next(iter(sets.values()))["markets"]
    first = scored[TEST]
    baseline = next(key for key in first if key.endswith(":baseline"))
    out = {}
    for key in (key for key in first if key != baseline):
        test, fresh = _pair_arrays(sets, key, baseline)
        stored = [truth["sets"][size][k]["scores"][key] - truth["sets"][size][k]["scores"][baseline] for k in sets]
        row = {
            "sets": len(sets),
            "test": difference(test, np.zeros_like(test)),
            "truth_gap": float(np.max(np.abs(test - stored))),  # 0 where these fits are the folder's, bit for bit
            "fresh": market_spread(fresh),
        }
        row["test_rank"] = int(np.sum(np.array(row["fresh"]["per_market"]) < row["test"]["difference"]))
        fresh_per_set = fresh.mean(axis=(1, 2))
        truths = {"test": dict(zip(sets, test)), "fresh": dict(zip(sets, fresh_per_set))}
        if OWN in scored:
            own = np.array(
                [np.mean(np.subtract(s["markets"][OWN][key], s["markets"][OWN][baseline])) for s in sets.values()]
            )
            row["own"] = difference(own, fresh_per_set)
            truths["own"] = dict(zip(sets, own))
        name = f"{key} - {baseline}"
        out[name] = {**row, **_verdict_bias(truth.get("verdicts", {}).get(size, {}), name, truths)}
    return out


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
            f"| {name} | {r['sets']} | {interval_text(r['test'])} | {interval_text(f)} | {100 * f['sd']:.1f} | "
            f"{100 * f['noise_sd']:.1f} | {100 * f['market_sd']:.1f} | {r['test_rank']} of {len(f['per_market'])} |"
        )
    gap = max(r["truth_gap"] for r in table.values())
    if gap > 1e-9:
        lines += [
            "",
            f"On the test market these fits' differences are the truth folder's within {100 * gap:.1f} pp on every "
            "set, not bit for bit (the folder's sets were fitted by earlier code; see VALIDATION.md).",
        ]
    own = {name: r for name, r in table.items() if "own" in r}
    if own:
        lines += [
            "",
            f"The sets' own markets: {s['own_market']} windows of each set's market and period drawn anew, less "
            "those sharing a bar with a window of the set; the difference there minus on the fresh markets "
            "(paired by set):",
            "",
            "| difference | sets | own market - fresh markets |",
            "|---|---|---|",
            *(f"| {name} | {r['own']['sets']} | {interval_text(r['own'])} |" for name, r in own.items()),
        ]
    return "\n".join(lines + _bias_lines(table)) + "\n"


def _bias_lines(table: dict) -> list[str]:
    """The verdicts' bias against every truth the rows hold (``_verdict_bias``); none without verdicts."""
    judged = {name: r for name, r in table.items() if "bias_test" in r}
    if not judged:
        return []
    against = [t for t in ("test", "fresh", "own") if f"bias_{t}" in next(iter(judged.values()))]
    heads = {"test": "the test market", "fresh": "the fresh markets", "own": "the own markets"}
    return [
        "",
        "The verdicts' bias (their cross-validated estimate minus the truth, paired by set) against each truth:",
        "",
        "| difference | verdicts | " + " | ".join(f"bias against {heads[t]}" for t in against) + " |",
        "|---|---|" + "---|" * len(against),
        *(
            f"| {name} | {r['bias_test']['sets']} | "
            + " | ".join(interval_text(r[f"bias_{t}"]) for t in against)
            + " |"
            for name, r in judged.items()
        ),
    ]


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth_markets",
        description="The truth study's sets scored on fresh markets: how much the one test market matters.",
    )
    add_arguments(parser, "markets.json, markets.md", "sets fitted at once, a process each")
    parser.add_argument("--markets", type=int, default=12, help="fresh markets (default 12)")
    parser.add_argument("--market-size", type=int, default=1000, help="windows a fresh market (default 1000)")
    parser.add_argument(
        "--own-market",
        type=int,
        metavar="N",
        help="also score each set's own market: N windows of its market and period drawn anew (less the set's)",
    )
    parser.add_argument(
        "--fresh-period",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="the fresh markets' days (default the truth study's test period; e.g. the sets' own period)",
    )
    args = parser.parse_args(argv)
    files = ("markets.json", "markets.md")
    truth_dir, out = study_folders(args, files)
    if args.markets < 2 or args.market_size < 20 or (args.own_market is not None and args.own_market < 20):
        raise ConfigError("--markets must be >= 2, --market-size and --own-market >= 20")
    wanted = {
        "truth_dir": str(truth_dir),
        "size": args.size,
        "arms": args.arms,
        "markets": args.markets,
        "market_size": args.market_size,
        "fresh_period": args.fresh_period,
        "own_market": args.own_market,
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
