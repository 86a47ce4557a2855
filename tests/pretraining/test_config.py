import dataclasses
import datetime as dt
from typing import Literal

import pytest

from moola_lib.bars.splits import DEFAULT_SPLITS
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.util.config import ConfigError, IsoDate, apply_overrides, read_parameters


def test_defaults_match_the_seed_guide():
    c = PretrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay, c.warmup_epochs) == (50, 1024, 1e-3, 1e-2, 5)
    assert (c.mask_ratio, c.huber_delta, c.grad_clip, c.mixed_precision, c.seed) == (0.15, 1.0, 1.0, True, 42)
    assert (c.input_size, c.hidden_size, c.num_layers, c.dropout) == (10, 128, 2, 0.2)
    assert (c.window_length, c.stride, c.data_path, c.patience) == (105, 52, None, None)
    assert c.splits == {k: list(v) for k, v in DEFAULT_SPLITS.items()}


def test_from_dict_applies_and_converts():
    c = PretrainConfig.from_dict(
        {
            "batch_size": 512,
            "lr": 3,
            "patience": 4,
            "grad_clip": None,
            "splits": {"train": ("2020-01-01", dt.date(2021, 1, 1)), "val": ["2021-01-01", "2021-02-01"]},
        }
    )
    assert c.batch_size == 512 and c.lr == 3.0 and isinstance(c.lr, float)
    assert c.patience == 4 and c.grad_clip is None
    assert c.splits["train"] == ["2020-01-01", "2021-01-01"]
    assert PretrainConfig().batch_size == 1024  # the default instance is untouched


def test_unknown_key_lists_valid_names_and_suggests():
    with pytest.raises(ConfigError) as e:
        PretrainConfig.from_dict({"batchsize": 512})
    msg = str(e.value)
    assert "'batchsize'" in msg and "Did you mean 'batch_size'" in msg and "warmup_epochs" in msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", 2.5),
        ("epochs", "10"),
        ("epochs", True),
        ("lr", True),
        ("lr", "fast"),
        ("mixed_precision", 1),
        ("epochs", None),
        ("mask_mode", "block"),
        ("device", "gpu"),
        ("splits", {"train": ["2020-01-01"], "val": ["2021-01-01", "2021-02-01"]}),
        ("splits", {"train": ["2020-13-01", "2021-01-01"], "val": ["2021-01-01", "2021-02-01"]}),
        ("exclude", "2021-01-01"),
        ("synthetic_start", 20200101),
    ],
)
def test_wrong_types_and_values_fail_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key.split("_")[0]):
        PretrainConfig.from_dict({key: value})


def test_a_lowercase_boolean_from_the_command_line_says_how_to_write_it():
    # papermill's -p reads True/False only; "-p progress false" arrives as the string 'false'
    params = read_parameters(pairs=[("progress", "false")])
    with pytest.raises(ConfigError, match=r"Config.progress: expected bool, got str \('false'\); write True or False"):
        PretrainConfig.from_dict(params)
    assert PretrainConfig.from_dict(read_parameters(pairs=[("progress", "False")])).progress is False


@pytest.mark.parametrize(
    "key, value",
    [("epochs", 0), ("mask_ratio", 1.0), ("dropout", -0.1), ("splits", {"train": ["2020-01-01", "2021-01-01"]})],
)
def test_invalid_values_fail(key, value):
    with pytest.raises(ConfigError):
        PretrainConfig.from_dict({key: value})


def test_generic_over_other_dataclasses():
    @dataclasses.dataclass
    class NotebookParams:
        run_dir: str | None = None
        seed: int = 0
        device: Literal["auto", "cpu", "cuda"] = "auto"
        sizes: list[int] = dataclasses.field(default_factory=lambda: [512])
        start: IsoDate = "2025-01-01"

    p = apply_overrides(NotebookParams(), {"sizes": (512, 768), "seed": 3, "start": dt.date(2025, 7, 1)}, what="params")
    assert p.sizes == [512, 768] and p.seed == 3 and p.start == "2025-07-01"
    with pytest.raises(ConfigError, match=r"params\.sizes\[1\]"):
        apply_overrides(NotebookParams(), {"sizes": [512, "768"]}, what="params")
    with pytest.raises(ConfigError, match="params: unknown option 'sed'.*'seed'"):
        apply_overrides(NotebookParams(), {"sed": 1}, what="params")


def test_round_trip_through_a_plain_dict_and_no_shared_state():
    c = PretrainConfig.from_dict({"exclude": [["2025-07-01", "2025-07-02T12:00"]], "max_gap_minutes": 30})
    d = c.to_dict()
    assert PretrainConfig.from_dict(d) == c
    assert d["exclude"] == [["2025-07-01", "2025-07-02T12:00:00"]] and d["max_gap_minutes"] == 30.0
    copy = apply_overrides(c, {})
    copy.splits["train"][0] = "1999-01-01"
    assert c.splits["train"][0] == "2020-09-01"


def test_feature_options_are_checked_and_resolved():
    from moola_lib.features.options import FEATURE_OPTION_DEFAULTS, ORIGINAL_FEATURE_OPTIONS
    from moola_lib.pretraining.config import PretrainConfig
    from moola_lib.util.config import ConfigError

    cfg = PretrainConfig.from_dict({"feature_options": {"hybrid_max_age": 5, "reversal_atr": 1}})
    # every option with its value, over the defaults: what checkpoints and encoders store
    assert cfg.feature_options == {
        **FEATURE_OPTION_DEFAULTS,
        "bars_norm": 105.0,
        "hybrid_max_age": 5,
        "reversal_atr": 1.0,
    }
    assert PretrainConfig().feature_options["dist_transform"] == "log"
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg
    original = PretrainConfig.from_dict({"feature_options": dict(ORIGINAL_FEATURE_OPTIONS)})
    assert original.feature_options == {**ORIGINAL_FEATURE_OPTIONS, "bars_norm": 105.0}
    with pytest.raises(ConfigError, match="unknown feature option 'hybrid_age'.*hybrid_max_age"):
        PretrainConfig.from_dict({"feature_options": {"hybrid_age": -1}})
    with pytest.raises(ConfigError, match=r"feature_options: feature option atr_period must be an integer"):
        PretrainConfig.from_dict({"feature_options": {"atr_period": 10.5}})
    with pytest.raises(ConfigError, match=r"dist_transform must be one of 'log', 'linear', got 'ln'"):
        PretrainConfig.from_dict({"feature_options": {"dist_transform": "ln"}})
    with pytest.raises(ConfigError, match=r"feature_options\['dist_clip'\]: expected"):
        PretrainConfig.from_dict({"feature_options": {"dist_clip": True}})
