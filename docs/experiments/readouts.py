"""The frozen probe's balanced accuracy per read-out (pooling x layer) on the protocol's 5 x 5 folds, then
the protocol with the eight read-outs of params/transfer_full.yaml chosen per fold on the inner split, and
LP-FT and finetune against the baseline (seeds_per_fold 1, 40 epochs, CPU), on the default embedded set.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice python docs/experiments/readouts.py ENCODER OUT.json

Prints one line per read-out, the arms' summaries and the comparisons; OUT.json holds them, the read-out
each fold chose, the best epochs and the verdict. VALIDATION.md, "Read-outs and LP-FT".
"""

import json
import sys
import time

from moola_lib.labels.provenance import EncoderSource, encoder_feature_options
from moola_lib.labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.fits import Inputs
from moola_lib.transfer.folds import fold_groups, make_folds
from moola_lib.transfer.protocol import evaluate_arms, run_transfer
from moola_lib.transfer.readouts import LAYERS, POOLINGS
from moola_lib.transfer.stats import summarise

path, out = sys.argv[1], sys.argv[2]
ALL = [f"{p}:{l}" for p in POOLINGS for l in LAYERS]
FULL = ["mean:last", "mean:both", "max:last", "max:both", "last:last", "last:both", "span:last", "span:both"]
labelled = synthetic_labelled_set(**EMBEDDED_SET.as_dict(), feature_options=encoder_feature_options(path))
source = EncoderSource.load(path, input_size=labelled.X.shape[-1])
base = dict(
    folds=5,
    repeats=5,
    seeds_per_fold=1,
    epochs=40,
    fractions=[1.0],
    n_bootstrap=0,
    device="cpu",
    progress=False,
    seed=0,
)
# 1. every read-out alone, frozen and random_frozen probes (deterministic: one pass of the folds)
cfg = TransferConfig(arms=["baseline", "frozen", "random_frozen"], readouts=ALL, **base)
t0 = time.perf_counter()
inputs = Inputs.build(labelled, source.encoder, cfg)
groups = fold_groups(labelled.groups, labelled.start, labelled.end, cfg.group_by_session)
assign = make_folds(labelled.y, groups, cfg.folds, cfg.repeats, cfg.seed)
lines = {}
for r in ALL:
    one = Inputs(inputs.data, inputs.encoder, {a: {r: inputs.fixed[a][r]} for a in ("frozen", "random_frozen")})
    res = evaluate_arms(labelled, one, cfg, assign, groups, arms=["frozen", "random_frozen"])
    lines[r] = {a: summarise(res[a]["folds"], list(labelled.classes))["balanced_accuracy"] for a in res}
    print(r, {a: round(v["mean"], 4) for a, v in lines[r].items()}, flush=True)
print("per-readout seconds", round(time.perf_counter() - t0, 1), flush=True)
# 2. the protocol: readouts chosen per fold among transfer_full's eight, LP-FT and finetune vs baseline
cfg2 = TransferConfig(arms=["baseline", "frozen", "finetune", "lpft", "random_frozen"], readouts=FULL, **base)
t0 = time.perf_counter()
res = run_transfer(labelled, source, cfg2)
print("protocol seconds", round(time.perf_counter() - t0, 1), flush=True)
summary = {
    a: {k: v["summary"]["balanced_accuracy"][k] for k in ("mean", "ci_low", "ci_high")} for a, v in res["arms"].items()
}
chosen = {a: [f.get("readout") for f in res["arms"][a]["folds"]] for a in ("frozen", "random_frozen")}
comps = {
    k: {m: v["balanced_accuracy"].get(m) for m in ("mean", "ci_low", "ci_high", "p_holm", "mde")}
    for k, v in res["comparisons"].items()
    if "balanced_accuracy" in v
}
epochs = {a: [f["best_epoch"] for f in res["arms"][a]["folds"]] for a in ("baseline", "lpft", "finetune")}
with open(out, "w") as f:
    json.dump(
        {
            "per_readout": lines,
            "summary": summary,
            "chosen": chosen,
            "comparisons": comps,
            "epochs": epochs,
            "verdict": res["verdict"],
        },
        f,
        indent=1,
        default=str,
    )
print(json.dumps(summary, indent=1))
print(json.dumps(comps, indent=1))
