"""Both command lines turn expected errors (a typo'd parameter, a bad data file, a ConfigError) into one
line on stderr and exit status 2, with no traceback."""

import pytest
from helpers import assert_one_line_error, run_command

TINY = ["-p", "epochs", "1", "-p", "hidden_size", "8", "-p", "num_layers", "1", "-p", "progress", "False"]


@pytest.fixture
def bad_csv(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low\n2024-01-02 14:30,1,2,0.5\n")  # no close column
    return path


@pytest.fixture
def list_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- epochs\n- 3\n")  # a YAML list, not a mapping
    return path


CASES = {
    "typo": lambda tmp, bad_csv, list_yaml: (["-p", "batchsize", "64"], ["unknown", "'batchsize'", "batch_size"]),
    "bad-data-file": lambda tmp, bad_csv, list_yaml: (["-p", "data_path", bad_csv], ["missing_columns", "close"]),
    "config-error": lambda tmp, bad_csv, list_yaml: (["-f", list_yaml], ["must be a YAML mapping"]),
    "invalid-value": lambda tmp, bad_csv, list_yaml: (["-p", "epochs", "0"], ["epochs must be >= 1"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pretrain_command_reports_expected_errors_in_one_line(tmp_path, bad_csv, list_yaml, case):
    args, expected = CASES[case](tmp_path, bad_csv, list_yaml)
    proc = run_command("moola_lib.pretrain", tmp_path / "run", *TINY, *args)
    assert_one_line_error(proc, *expected)
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()


@pytest.mark.parametrize("case", ["typo", "config-error"])
def test_run_notebook_reports_expected_errors_before_starting_a_kernel(tmp_path, bad_csv, list_yaml, case):
    args, expected = CASES[case](tmp_path, bad_csv, list_yaml)
    proc = run_command("moola_lib.run_notebook", "pretrain", "--run-dir", tmp_path / "run", *args)
    assert_one_line_error(proc, *expected)
    assert not (tmp_path / "run").exists()


def test_run_notebook_unknown_notebook(tmp_path):
    assert_one_line_error(run_command("moola_lib.run_notebook", "pretrian"), "no notebook", "known: ")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bad-data-file", "invalid-value"])
def test_run_notebook_reports_expected_errors_raised_in_the_notebook(tmp_path, bad_csv, list_yaml, case):
    args, expected = CASES[case](tmp_path, bad_csv, list_yaml)
    proc = run_command(
        "moola_lib.run_notebook",
        "eda" if case == "bad-data-file" else "pretrain",
        "--no-progress",
        "--run-dir",
        tmp_path / "run",
        *args,
    )
    assert_one_line_error(proc, *expected)
    assert (tmp_path / "run" / "report.html").exists()  # the failed run is still on record
    assert_no_kernel_noise(proc.stdout + proc.stderr)


def assert_no_kernel_noise(output: str) -> None:
    """Nothing of the kernel process's own in the runner's output: no ipykernel log line (such as its
    "Kernel is running over TCP without encryption" warning)."""
    assert "without encryption" not in output, output[-3000:]
    assert "[IPKernelApp]" not in output, output[-3000:]


@pytest.mark.slow
def test_runner_output_holds_no_kernel_noise(tmp_path, monkeypatch, capfd):
    """A small notebook through the runner: what the kernel process writes itself (here a line through
    ipykernel's own logger, the way it warns) lands in RUN_DIR/kernel.log, the notebook's output in the
    notebook, and the terminal sees neither; the kernel's channels are encrypted."""
    import nbformat

    from moola_lib.notebook import execute

    cells = [
        nbformat.v4.new_code_cell("run_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from moola_lib.notebook.params import EdaParams\n"  # the run is accepted
            "from moola_lib.notebook.runs import start_run\n"
            "run = start_run('tiny', globals(), EdaParams)"
        ),
        nbformat.v4.new_code_cell(
            "from ipykernel.kernelapp import IPKernelApp\n"
            "app = IPKernelApp.instance()\n"
            "app.log.warning('noise from the kernel itself')\n"
            "print('encrypted:', app.curve_secretkey is not None)"
        ),
    ]
    notebook = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    monkeypatch.setattr(execute, "NOTEBOOK_DIR", tmp_path)
    assert execute.main(["tiny", "--no-progress", "--run-dir", str(tmp_path / "run")]) == 0
    out, err = capfd.readouterr()
    assert_no_kernel_noise(out + err)
    assert "noise from the kernel itself" not in out + err
    assert "noise from the kernel itself" in (tmp_path / "run" / execute.KERNEL_LOG).read_text()
    outputs = nbformat.read(tmp_path / "run" / "tiny.ipynb", as_version=4).cells[-1].outputs
    assert [o.get("text") for o in outputs] == ["encrypted: True\n"]
