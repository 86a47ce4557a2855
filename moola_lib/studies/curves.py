"""Learning curves over labelled-set sizes: ``python -m moola_lib.studies.curves`` (issue 17, the real question).

For each size in ``sizes`` a FRESH labelled set is drawn from the embedded testbed (``synthetic_labelled_set``):
size i from its own market (seed ``market_seed + i``, labelled period ``period``, after every encoder's
pretraining period), so no two sizes share a window. Each set gets its own folds (``make_folds``), and the
protocol's arms run on them through the protocol's own code (``evaluate_arms``, ``comparisons``, the verdict's
interval ``intervals.VERDICT_INTERVAL``): the arms that read no encoder (simple_*, rocket_*) once per size, the
arms on a random encoder (baseline, random_frozen) once per size and encoder architecture, the arms on the
pretrained encoder (frozen, finetune, lpft) once per size and encoder (``transfer`` holds the TransferConfig
options: arms, read-outs, folds, epochs). Every encoder's comparisons are those
of ``comparisons.comparison_pairs`` with its architecture's baseline and the shared non-neural arms; the
p-values of all of one size's distinct comparisons get Holm's correction together (``p_holm_size``), so that
many encoders and arms do not manufacture a finding.

Reported per size: each arm's balanced accuracy (mean, corrected-t 95% CI over the folds) and, per encoder,
each pretrained arm against the baseline and against the best non-neural arm of that size (difference, CI,
p, Holm-corrected p, minimal detectable effect). Results go to ``--json`` after every size (atomic writes:
a stopped run leaves the finished sizes), a Markdown summary to ``--markdown``, a figure to ``--figure``;
``--from-json`` redraws both from results files, joining runs of one architecture and options.
Expected errors (bad config, missing encoder file) print one line and exit 2.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..labels.provenance import EncoderSource
from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..transfer.arms import arm as arm_row
from ..transfer.arms import result_arms
from ..transfer.comparisons import comparisons
from ..transfer.config import TransferConfig
from ..transfer.fits import Inputs
from ..transfer.folds import config_groups, make_folds
from ..transfer.protocol import evaluate_arms
from ..transfer.stats import holm, summarise
from ..util.cli import ArgumentParser, add_parameter_flags, parameters, run
from ..util.config import ConfigError, StrictConfig
from ..util.io import atomic_write_text, check_writable, read_json, write_json
from .curves_report import figure, markdown, merge_runs

METRIC = "balanced_accuracy"


@dataclass
class CurvesConfig(StrictConfig):
    """What the learning curves run. ``transfer`` holds TransferConfig options (its own checks apply)."""

    encoders: dict[str, str] = field(default_factory=dict)  # name -> encoder file or pretraining checkpoint
    sizes: list[int] = field(default_factory=lambda: [50, 100, 174, 350, 700])
    transfer: dict[str, Any] = field(default_factory=lambda: {"folds": 5, "repeats": 2, "epochs": 40, "patience": 10})
    period: list[str] = field(default_factory=lambda: [EMBEDDED_SET.start, "2026-03-31"])  # 9 months: 700 fit
    history_start: str = EMBEDDED_SET.history_start
    market_seed: int = 1_000_000  # size i: market market_seed + i (not the pretraining market 0)
    seed: int = 0  # size i: window draw seed + i

    def __post_init__(self) -> None:
        self.require(
            [
                (bool(self.sizes) and all(s >= 10 for s in self.sizes), "sizes must be a list of sizes >= 10"),
                (len(self.period) == 2, "period must be [first day, last day]"),
            ]
        )

    def transfer_config(self, arms=None) -> TransferConfig:
        """The protocol's options for every size (no bootstrap, no learning-curve fractions, no bars)."""
        options = {"n_bootstrap": 0, "progress": False, **self.transfer, "fractions": [1.0]}
        if arms is not None:
            options["arms"] = arms
        return TransferConfig.from_dict(options)


def labelled_set(cc: CurvesConfig, i: int):
    """The i-th size's fresh labelled set: its own market and draw seed."""
    lo, hi = cc.period
    return synthetic_labelled_set(
        n=cc.sizes[i],
        seed=cc.seed + i,
        start=lo,
        end=hi,
        history_start=cc.history_start,
        market_seed=cc.market_seed + i,
    )


def _split_arms(cfg: TransferConfig) -> tuple[list[str], list[str], list[str]]:
    """The config's result arms by the encoder they read: none, a random one, the pretrained one."""
    arms = result_arms(cfg.arms)
    by = {e: [a for a in arms if arm_row(a).encoder == e] for e in (None, "random", "pretrained")}
    return by[None], by["random"], by["pretrained"]


def _arch_key(source: EncoderSource) -> str:
    a = source.encoder.arch
    return f"{a['num_layers']}x{a['hidden_size']}"


def _runs(labelled, sources: dict, cfg: TransferConfig, assign, groups) -> tuple[dict, dict, dict]:
    """evaluate_arms for the shared arms (once), the random-encoder arms (once per architecture) and the
    pretrained arms (once per encoder), on the same folds."""
    none, random, pretrained = _split_arms(cfg)

    # Inputs of one encoder hold every arm's fixed features (cheap next to any fit): the shared arms read
    # the first encoder's, whose pooled features they ignore
    inputs = {name: Inputs.build(labelled, s.encoder, cfg) for name, s in sources.items()}

    def evaluate(name, arms):
        return evaluate_arms(labelled, inputs[name], cfg, assign, groups, arms=arms) if arms else {}

    shared = evaluate(next(iter(sources)), none)
    by_arch = {}
    for name, source in sources.items():
        if _arch_key(source) not in by_arch:
            by_arch[_arch_key(source)] = evaluate(name, random)
    per_encoder = {name: evaluate(name, pretrained) for name in sources}
    return shared, by_arch, per_encoder


def _comparison_row(comp: dict, encoder: str, arch: str) -> dict:
    d = comp[METRIC]
    return {
        "encoder": encoder,
        "arch": arch,
        "arm": comp["arm"],
        "reference": comp["reference"],
        **{k: d[k] for k in ("mean", "ci_low", "ci_high", "p_value", "mde", "interval")},
    }


def size_result(labelled, sources: dict, cfg: TransferConfig) -> dict:
    """One size: every arm's summary and the comparisons (Holm within the size) of every encoder."""
    t0 = time.perf_counter()
    groups = config_groups(labelled, cfg)
    labelled.check_folds(cfg.folds, groups)
    assign = make_folds(labelled.y, groups, cfg.folds, cfg.repeats, cfg.seed)
    shared, by_arch, per_encoder = _runs(labelled, sources, cfg, assign, groups)
    classes = list(labelled.classes)

    def summary(run):
        s = summarise(run["folds"], classes)[METRIC]
        return {k: s[k] for k in ("mean", "ci_low", "ci_high")}

    arms = {
        "shared": {a: summary(r) for a, r in shared.items()},
        "by_arch": {k: {a: summary(r) for a, r in runs.items()} for k, runs in by_arch.items()},
        "by_encoder": {k: {a: summary(r) for a, r in runs.items()} for k, runs in per_encoder.items()},
    }
    rows = {}
    for name, source in sources.items():
        arch = _arch_key(source)
        main = {**shared, **by_arch.get(arch, {}), **per_encoder[name]}
        for comp in comparisons(labelled.y, groups, len(classes), main, cfg).values():
            who = name if arm_row(comp["arm"]).encoder == "pretrained" else arch
            rows.setdefault(f"{who}: {comp['arm']} vs {comp['reference']}", _comparison_row(comp, who, arch))
    for row, p in zip(rows.values(), holm([r["p_value"] for r in rows.values()])):
        row["p_holm_size"] = p
    best = max(arms["shared"], key=lambda a: arms["shared"][a]["mean"], default=None)
    fit_seconds = {
        f"{who}/{a}": sum(f["seconds"] for f in r["folds"])
        for who, runs in [("none", shared), *by_arch.items(), *per_encoder.items()]
        for a, r in runs.items()
    }
    return {
        "n": len(labelled.y),
        "source": labelled.source,
        "n_groups": len(np.unique(groups)),
        "arms": arms,
        "best_non_neural": best,
        "comparisons": rows,
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - t0,
    }


def curves(cc: CurvesConfig, json_path=None, note=print) -> dict:
    """Every size in turn; the results dict, written to ``json_path`` after every size."""
    cfg = cc.transfer_config()
    if not cc.encoders:
        raise ConfigError("CurvesConfig: encoders must name at least one encoder (-y '{encoders: {NAME: PATH}}')")
    sources = {}
    for name, path in cc.encoders.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"curves: encoder {name!r}: {path} not found")
        sources[name] = EncoderSource.load(path, input_size=10)
    out = {
        "config": dataclasses.asdict(cc),
        "transfer_config": dataclasses.asdict(cfg),
        "encoders": {
            n: {
                "path": str(s.path),
                "arch": dict(s.encoder.arch),
                "objective": (s.training_results or {}).get("objective"),
                "best_val_loss": (s.training_results or {}).get("best_val_loss"),
            }
            for n, s in sources.items()
        },
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "sizes": {},
    }
    t0 = time.perf_counter()
    for i, n in enumerate(cc.sizes):
        labelled = labelled_set(cc, i)
        out["sizes"][str(n)] = size_result(labelled, sources, cfg)
        out["seconds"] = time.perf_counter() - t0
        if json_path:
            write_json(json_path, out)
        note(f"size {n} done in {out['sizes'][str(n)]['seconds']:.0f} s")
    return out


def read_results(path) -> dict:
    """A results file of this command (``--from-json``); a file that is none (empty, not JSON, another
    command's) is a ConfigError naming it."""
    try:
        results = read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"--from-json {path}: cannot be read as JSON ({getattr(e, 'strerror', None) or e}); give a results "
            "file of transfer.curves"
        ) from None
    sizes = results.get("sizes") if isinstance(results, dict) else None
    if not (
        isinstance(sizes, dict)
        and all(isinstance(results.get(k), dict) for k in ("encoders", "transfer_config"))
        and all(isinstance(r, dict) and isinstance(r.get("arms"), dict) for r in sizes.values())
    ):
        raise ConfigError(
            f"--from-json {path}: not a results file of transfer.curves (it needs 'encoders', "
            "'transfer_config' and 'sizes' with each size's 'arms')"
        )
    return results


def _main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m moola_lib.studies.curves", description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="runs/curves/curves.json", help="results file (rewritten after every size)")
    parser.add_argument("--markdown", help="also write the Markdown summary here")
    parser.add_argument("--figure", help="also write the figure (PNG) here")
    parser.add_argument(
        "--from-json",
        nargs="+",
        metavar="JSON",
        help="run nothing: redraw --markdown / --figure from these results files (same "
        "architectures and options joined, else a panel each)",
    )
    add_parameter_flags(parser, what="option (a field of CurvesConfig)")
    args = parser.parse_args(argv)
    cc = None if args.from_json else CurvesConfig.from_dict(parameters(args))
    for path in filter(None, (None if args.from_json else args.json, args.markdown, args.figure)):
        check_writable(path)  # before the work (minutes to hours), not after it
    if args.from_json:
        runs = merge_runs([read_results(p) for p in args.from_json])
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = curves(
                cc,
                args.json,
                note=lambda m: print(f"[curves {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True),
            )
        finally:
            torch.set_num_threads(threads)
        results["command"] = " ".join(["python -m moola_lib.studies.curves", *(argv or [])])
        write_json(args.json, results)
        runs = [results]
    text = "\n".join(markdown(r) for r in runs)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    if args.figure:
        figure(runs, args.figure)
    print(text)


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
