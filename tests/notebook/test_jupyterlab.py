"""The notebooks in a real browser: ``jupyter lab`` on localhost with a token, driven through a headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``bin/dev setup`` when missing) with
selenium. Marked slow.

Copies of the notebooks run in a temporary folder (JupyterLab autosaves, and the committed notebooks stay
clean); their parameter cells are made CPU-small, and the labels file points into that folder. Runs go to
a temporary ``MOOLA_RUNS_DIR``. Screenshots go to the test's output folder: ``MOOLA_SCREENSHOTS`` if set,
else ``<tmp>/screenshots`` (printed). Without a browser the test is skipped, except under CI (CI=true),
where that is a failure: the set-up is meant to install it.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from moola_lib.util.paths import ROOT

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SMALL = {
    "pretrain.ipynb": {
        "epochs": "2",
        "synthetic_start": '"2024-12-20"',
        "synthetic_end": '"2025-01-10"',
        "splits": '{"train": ["2024-12-20", "2025-01-01"], "val": ["2025-01-01", "2025-01-11"]}',
        "batch_size": "64",
        "hidden_size": "16",
        "num_layers": "1",
        "device": '"cpu"',
    },
    "eda.ipynb": {"synthetic_start": '"2025-05-01"', "synthetic_end": '"2025-05-10"'},
    "label.ipynb": {"synthetic_end": '"2025-05-20"', "n_suggestions": "4"},
}


def _browser_or_skip():
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "the selenium package"
    else:
        missing = None if CHROMIUM and DRIVER else "chromium / chromedriver"
    if missing:
        message = f"no real browser: {missing} missing (bin/dev setup installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _copy_notebook(name: str, folder: Path, labels: Path) -> None:
    """The notebook with its parameter cell edited (literal assignments replaced, one per line)."""
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {**SMALL[name], **({"labels_path": repr(str(labels))} if name == "label.ipynb" else {})}
    lines = []
    for line in cell.source.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {values[key]}" if key in values else line)
    cell.source = "\n".join(lines)
    nbformat.write(nb, folder / name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _browser_or_skip()
    folder = tmp_path_factory.mktemp("lab")
    labels = folder / "labels.csv"
    for name in SMALL:
        _copy_notebook(name, folder, labels)
    news = folder / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "get notified about Jupyter news?" toast over the screenshots
    # every cell stays in the page: with JupyterLab's default windowing, cells scrolled out of view are not
    # rendered, and the "finished" marker of the last cell can be missing from the page text. The notebook's
    # kernel starts without asking: on a loaded machine the "Select Kernel" dialog could open seconds after
    # Run All had started, and accepting it replaced the running kernel
    tracker = folder / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none", "autoStartDefaultKernel": true}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MOOLA_RUNS_DIR": str(folder / "runs"),
        "OMP_NUM_THREADS": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".ws"),
        "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
            "--allow-root",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "lab.log", "w"),  # noqa: SIM115 - the server writes it for its whole life
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: server.poll() is not None or _status_ok(f"{url}/api/status?token={token}"),
            90,
            "jupyter lab to start",
        )
        assert server.poll() is None, (folder / "lab.log").read_text()[-3000:]
        yield {"url": url, "token": token, "folder": folder, "labels": labels}
    finally:
        server.terminate()
        server.wait(30)


def _status_ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


# a page's response to a click or a key: seconds when the machine is idle, but the suite runs on two pytest
# workers (bin/dev test) and another test's fits may hold both cores; a failure guard, not a speed test
UI_WAIT = 120


def _wait(condition, timeout: float, what: str):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except StaleElementReferenceException:  # the page redrew the element under us: look again
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("MOOLA_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open_and_run_all(browser, lab, name: str) -> None:
    from selenium.webdriver.common.by import By

    # a workspace of its own, reset: this notebook is the only tab, so every lookup below finds its cells
    browser.get(f"{lab['url']}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={lab['token']}")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 90, f"{name} to open")
    _wait(lambda: _kernel_idle(browser) or _accept_kernel_dialog(browser), 120, f"the kernel of {name}")
    _wait(lambda: _kernel_idle(browser), 120, f"the kernel of {name}")
    _wait(_kernel_settled(lab, name), 120, f"one kernel for {name}, unchanged for 3 s")
    for _ in range(3):  # a click that lands before the notebook has focus does nothing: check, retry
        _click_menu(browser, "Run", "runmenu:run-all")
        try:
            _wait(
                lambda: any(
                    re.fullmatch(r"\[(\d+|\*)\]:", p.text.strip())
                    for p in browser.find_elements(By.CSS_SELECTOR, ".jp-InputPrompt")
                ),
                20,
                "a cell to run",
            )
            return
        except AssertionError:
            continue
    browser.save_screenshot(str(lab["folder"] / f"not-running-{name}.png"))
    raise AssertionError(f"Run All Cells did not start {name} (screenshot in {lab['folder']})")


def _click_menu(browser, menu: str, command: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(
        lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == menu],
        UI_WAIT,
        menu,
    )[0].click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, f"li[data-command='{command}']"), UI_WAIT, command)[0].click()


def _kernel_settled(lab, name: str):
    """A condition: the server has had one kernel session for ``name``, the same, for 3 s. JupyterLab can
    start a kernel and replace it a moment later; Run All sent in between is lost with the first kernel."""
    seen = []

    def settled() -> bool:
        with urllib.request.urlopen(f"{lab['url']}/api/sessions?token={lab['token']}", timeout=5) as r:
            seen.append(tuple(s["kernel"]["id"] for s in json.load(r) if s["path"] == name))
        return len(seen) >= 7 and len(set(seen[-7:])) == 1 and len(seen[-1]) == 1

    return settled


def _accept_kernel_dialog(browser) -> bool:
    """JupyterLab sometimes opens a notebook before it has read the kernel specs and then asks which kernel
    to start, with the notebook's own preselected: accept it. Any other dialog fails the test."""
    from selenium.webdriver.common.by import By

    dialogs = browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog")
    if not dialogs:
        return False
    assert dialogs[0].text.startswith("Select Kernel") and "Python 3 (moola)" in dialogs[0].text, dialogs[0].text
    dialogs[0].find_element(By.CSS_SELECTOR, ".jp-mod-accept").click()
    return False  # then wait for that kernel to be idle


def _scroll_to(browser, element) -> None:
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


def _kernel_idle(browser) -> bool:
    from selenium.webdriver.common.by import By

    status = browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")
    return bool(status) and status[0].get_attribute("data-status") == "idle"


def _page_text(browser) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").text


def _finished(browser, marker: str):
    """The run finished (its last cell printed ``marker``) and no cell raised."""
    text = _page_text(browser)
    assert "Traceback" not in text, text[-3000:]
    return marker in text and _kernel_idle(browser)


def _wait_finished(browser, lab, name: str, timeout: float) -> None:
    """Wait for ``name`` to finish; on a time-out, a screenshot and what the page shows say where it stood."""
    try:
        _wait(lambda: _finished(browser, "Run directory:"), timeout, f"{name} to finish")
    except AssertionError:
        browser.save_screenshot(str(lab["folder"] / f"unfinished-{name}.png"))
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {name} to finish (kernel idle: "
            f"{_kernel_idle(browser)}; screenshot in {lab['folder']}); the page ends with:\n"
            f"{_page_text(browser)[-1500:]}"
        ) from None


def test_pretrain_runs_all_cells_with_the_progress_widget(browser, lab, shots):
    from selenium.webdriver.common.by import By

    _open_and_run_all(browser, lab, "pretrain.ipynb")
    bar = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".widget-hprogress"), 180, "the progress widget")
    _scroll_to(browser, bar[-1])
    browser.save_screenshot(str(shots / "pretrain_progress.png"))
    _wait_finished(browser, lab, "pretrain.ipynb", 400)
    assert "Best val loss" in _page_text(browser)
    browser.save_screenshot(str(shots / "pretrain_report.png"))
    # no manual step but the save (File > Save, Ctrl+S, or the autosave): the run's report.html appears
    _click_menu(browser, "File", "docmanager:save")
    reports = _wait(
        lambda: [
            p for p in (lab["folder"] / "runs").glob("pretrain-*/report.html") if "Best val loss" in p.read_text()
        ],
        120,
        "report.html in the run directory after the save",
    )
    assert (reports[0].parent / "pretrain.ipynb").exists()
    _wait(lambda: "Report: " in _page_text(browser), 60, "the report's line under the last cell")


def test_eda_window_browser_changes_the_figure(browser, lab, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_and_run_all(browser, lab, "eda.ipynb")
    _wait_finished(browser, lab, "eda.ipynb", 300)

    def figure():
        imgs = browser.find_elements(By.CSS_SELECTOR, ".widget-output img")
        return imgs and imgs[-1].get_attribute("src")

    before = _wait(figure, 60, "the window browser's figure")
    readout = browser.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout").text
    handle = browser.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    _scroll_to(browser, handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    _wait(lambda: figure() not in (None, before), 60, "the figure to change")
    assert browser.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout").text != readout
    browser.save_screenshot(str(shots / "eda_window_browser.png"))


def test_label_buttons_and_keys_write_rows_and_undo_removes_the_last(browser, lab, shots):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_and_run_all(browser, lab, "label.ipynb")
    _wait_finished(browser, lab, "label.ipynb", 300)

    def button(text):
        found = [b for b in browser.find_elements(By.CSS_SELECTOR, "button.widget-button") if b.text == text]
        return found[0] if found and found[0].is_enabled() else None

    def rows():
        return list(pd.read_csv(lab["labels"])["label"]) if lab["labels"].exists() else []

    def press(key, labels: list[str], what: str):
        # ipyevents takes keys while the pointer is over the widget: hover it, then type
        ActionChains(browser).move_to_element(widget).pause(0.3).send_keys(key).perform()
        _wait(lambda: rows() == labels, UI_WAIT, what)

    target = _wait(lambda: button("1 consolidation"), 60, "the '1 consolidation' button")
    widget = target.find_element(By.XPATH, "ancestor::div[contains(@class, 'widget-vbox')][1]")
    _scroll_to(browser, widget)
    target.click()
    _wait(lambda: rows() == ["consolidation"], UI_WAIT, "the button's row in the labels file")
    # keys count only while the pointer is over the widget (as the widget says): elsewhere "2" labels nothing
    ActionChains(browser).move_to_element(browser.find_element(By.CSS_SELECTOR, ".jp-FileBrowser")).pause(
        0.3
    ).send_keys("2").perform()
    time.sleep(2)
    assert rows() == ["consolidation"]
    press("2", ["consolidation", "retracement"], "key 2 to write a retracement row")
    _wait(lambda: "2 left in this batch" in _page_text(browser), UI_WAIT, "the counter after two labels")
    brief = widget.find_element(By.CSS_SELECTOR, ".widget-html").text
    assert "after the expansion leg" in brief and "1 consolidation: " in brief and "2 retracement: " in brief, brief
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", widget)
    _wait(lambda: _kernel_idle(browser), UI_WAIT, "the kernel to draw the next window")
    time.sleep(1)  # the new figure arrives with the last message before idle: let the page draw it
    browser.save_screenshot(str(shots / "label_widget.png"))
    press("s", ["consolidation", "retracement"], "key s to leave the rows alone")
    _wait(lambda: "1 left in this batch" in _page_text(browser), UI_WAIT, "key s to skip a window")
    press("1", ["consolidation", "retracement", "consolidation"], "key 1 to write a consolidation row")
    press("u", ["consolidation", "retracement"], "key u to remove the last row")
    press(Keys.BACKSPACE, ["consolidation"], "Backspace to remove the last row")
    # the file is written before the kernel's message redraws the tally: wait for the page, not the file
    tally = "labelled 1 (consolidation 1, retracement 0)"
    _wait(lambda: tally in _page_text(browser), UI_WAIT, "the tally after Backspace")
    button("u undo").click()
    _wait(lambda: rows() == [], UI_WAIT, "the undo button to remove the last row")
