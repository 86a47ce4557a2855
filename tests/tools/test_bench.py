import json

import pytest
import torch

from moola_lib.tools import bench


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_bench_smoke_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    result = bench.main(["--quick", "--tiny", "--device", "cpu", "--threads", "1", "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    for key in (
        "features_bars_per_s",
        "train_windows_per_s",
        "bare_windows_per_s",
        "overhead_ratio",
        "peak_memory",
        "device",
    ):
        assert key in result
    assert result["device"] == "cpu" and result["cpu_threads"] == 1 and "full_job" not in result
    assert result["features_bars_per_s"] > 0 and result["features"]["bars"] > 10_000
    sizes = [str(b) for b in bench.PRESETS["tiny"]["batch_sizes"]]
    assert list(result["train_windows_per_s"]) == sizes
    assert all(v > 0 for v in result["train_windows_per_s"].values())
    assert all(v > 0 for v in result["overhead_ratio_by_batch_size"].values())
    assert result["overhead_ratio"] == result["overhead_ratio_by_batch_size"][sizes[-1]]
    assert result["peak_memory"]["host_max_rss_bytes"] > 0
    table = capsys.readouterr().out
    assert "bars/s" in table and "overhead" in table and sizes[-1] in table


def test_default_presets_use_the_seed_batch_sizes():
    assert bench.PRESETS["full"]["batch_sizes"] == bench.PRESETS["quick"]["batch_sizes"] == (512, 768, 1024)
    assert bench.PRESETS["quick"]["range"] == ("2020-09-01", "2025-09-30")


def test_scan_bench_smoke_times_every_arm_on_the_same_windows(tmp_path, capsys):
    path = tmp_path / "scan.json"
    result = bench.main(["--scan", "--tiny", "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    rows = result["arms"]
    assert [r["arm"] for r in rows] == ["frozen", "simple_logistic"]
    assert rows[0]["windows"] == rows[1]["windows"] > 1000  # one day of bars, stride 1
    assert all(r["seconds"] > 0 and r["windows_per_s"] > 0 and r["torch_threads"] == 1 for r in rows)
    assert result["features_seconds"] > 0 and result["recipe"]["cpu_threads"] == 1
    assert "windows/s" in capsys.readouterr().out


def test_scan_bench_refuses_an_unknown_arm(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--scan", "--tiny", "--arms", "frozn"])
    assert e.value.code == 2 and "frozn" in capsys.readouterr().err
