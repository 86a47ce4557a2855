"""The arms of the transfer protocol: one table, one row per arm as the results report it.

Everything that differs between arms is a field of its row (``Arm``): the ``TransferConfig.arms`` value that
runs it (``option``; "simple" and "rocket" run two result arms each), how it is fitted (``kind``), which
encoder it reads, its optimiser settings, its title and colour in the figures, and its role in the
comparisons. The config's allowed values, the figures, the probe, the comparisons, the verdict and the
protocol all read this table; adding an arm is one row here (plus its kind's class in ``fits.py``, with
its fit function, when its ``kind`` is new).

Kinds (``fits.KINDS`` holds one class per kind: how it prepares, fits, predicts and is stored):

- ``trained``: the encoder and the classifier head trained by SGD on the fit windows, the epoch chosen on
  the inner validation windows (``probe.fit_classifier``), ``seeds_per_fold`` seeds averaged; with
  ``probe_head`` (LP-FT) the head starts from the linear probe on the frozen encoder's mean-pooled
  features (fitted on the fit windows, C chosen on the inner validation windows) and the whole model trains
  at ``lr * encoder_lr_scale``;
- ``probe``: the encoder frozen, a deterministic linear probe (``linear.fit_logistic``) on its pooled
  features (the read-out chosen per fold from ``TransferConfig.readouts``, ``readouts.py``);
- ``summaries``: a scikit-learn model on per-window feature summaries (``simple``);
- ``rocket``: MiniRocket / MultiRocket features of the 10 feature series with a ridge classifier
  (``rocket``).

Roles: ``reference`` (the baseline every comparison starts from), ``pretrained`` (the arms that read the
pretrained encoder: the question), ``control`` (random encoder under the same probe), ``non_neural`` (the
cheap models a reviewer tries first: a pretrained encoder that does not beat the best of them adds nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Arm:
    """One arm as the results report it (the key in transfer_results.json's "arms")."""

    name: str
    option: str  # the TransferConfig.arms value that runs it
    kind: Literal["trained", "probe", "summaries", "rocket"]
    role: Literal["reference", "pretrained", "control", "non_neural"]
    title: str  # figures, tables, verdict
    colour: str  # matplotlib colour in every figure
    encoder: Literal["pretrained", "random"] | None = None  # the encoder it starts from (None: reads none)
    scaled_encoder_lr: bool = False  # trained: encoder lr = lr x encoder_lr_scale (else lr)
    head_first: bool = False  # trained: encoder frozen for unfreeze_epoch epochs
    probe_head: bool = False  # trained: head from the linear probe, head lr scaled too (LP-FT)
    model: str | None = None  # summaries / rocket: which model or transform


TABLE: tuple[Arm, ...] = (
    Arm("baseline", "baseline", "trained", "reference", "random init (baseline)", "#7f7f7f", encoder="random"),
    Arm(
        "frozen",
        "frozen",
        "probe",
        "pretrained",
        "pretrained, frozen encoder (linear probe)",
        "#1f77b4",
        encoder="pretrained",
    ),
    Arm(
        "finetune",
        "finetune",
        "trained",
        "pretrained",
        "pretrained, fine-tuned encoder",
        "#d62728",
        encoder="pretrained",
        scaled_encoder_lr=True,
        head_first=True,
    ),
    Arm(
        "lpft",
        "lpft",
        "trained",
        "pretrained",
        "pretrained, linear probe then fine-tuned (LP-FT)",
        "#ff7f0e",
        encoder="pretrained",
        scaled_encoder_lr=True,
        probe_head=True,
    ),
    Arm(
        "random_frozen",
        "random_frozen",
        "probe",
        "control",
        "random init, frozen encoder (probe control)",
        "#bcbd22",
        encoder="random",
    ),
    Arm(
        "simple_logistic",
        "simple",
        "summaries",
        "non_neural",
        "logistic regression on window summaries",
        "#9467bd",
        model="logistic",
    ),
    Arm(
        "simple_boosting",
        "simple",
        "summaries",
        "non_neural",
        "gradient boosting on window summaries",
        "#8c564b",
        model="boosting",
    ),
    Arm(
        "rocket_minirocket",
        "rocket",
        "rocket",
        "non_neural",
        "MiniRocket features + ridge",
        "#e377c2",
        model="minirocket",
    ),
    Arm(
        "rocket_multirocket",
        "rocket",
        "rocket",
        "non_neural",
        "MultiRocket features + ridge",
        "#17becf",
        model="multirocket",
    ),
)
BY_NAME: dict[str, Arm] = {arm.name: arm for arm in TABLE}
REFERENCE: str = next(a.name for a in TABLE if a.role == "reference")  # every comparison starts from it
OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(arm.option for arm in TABLE))  # TransferConfig.arms values


def arm(name: str) -> Arm:
    """The row of result arm ``name`` (KeyError naming the known arms)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown transfer arm {name!r}; known: {', '.join(BY_NAME)}") from None


def result_arms(options) -> list[str]:
    """The result arms that config options (``TransferConfig.arms`` values) run, in the options' order."""
    return [a.name for option in options for a in TABLE if a.option == option]


def names(role: str | None = None, kind: str | None = None) -> tuple[str, ...]:
    """Result arm names, optionally of one role and / or kind, in table order."""
    return tuple(a.name for a in TABLE if (role is None or a.role == role) and (kind is None or a.kind == kind))
