"""The dashboard in headless Chromium against a real service (uvicorn, embedded runner, SQLite)
with API keys required: the page asks for a key, submits a job through its form, shows the
spec's error, draws the running job's curves as they grow, and ends with the three series,
the results and the artifacts; a screenshot is checked for each series' colour.

Needs Debian's `chromium` and `chromium-driver` (Selenium drives them; it never downloads a
browser). DISTILLERY_UPDATE_SCREENSHOT=1 also saves the screenshot as docs/dashboard.png.
"""

import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import auth
from app.db import session_scope
from tests.conftest import missing_service
from tests.e2e.conftest import ROOT, Service, free_port, start, uvicorn_argv, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "dashboard.png"
# The series' colours in app/dashboard/dashboard.js.
COLOURS = {
    "teacher": (0x1F, 0x6F, 0xD1),
    "student": (0xE4, 0x57, 0x2E),
    "baseline": (0x2A, 0x9D, 0x3F),
}
DISTILL_EPOCHS = 30
# Long enough (some seconds of distillation) for the page to see the student's curve grow.
JOB: dict[str, Any] = {
    "name": "digits-mlp128-to-mlp12",
    "dataset": {"name": "digits"},
    "teacher": {
        "arch": "mlp",
        "params": {"hidden": [128]},
        "train": {"epochs": 12, "batch_size": 32},
    },
    "student": {"arch": "mlp", "params": {"hidden": [12]}},
    "distill": {"epochs": DISTILL_EPOCHS, "batch_size": 32, "temperature": 4.0},
    "export": ["onnx"],
}
BAD_JOB = {**JOB, "student": {"arch": "no_such_arch"}}


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing_service(
            f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError as exc:
        missing_service(f"selenium not installed: {exc}")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser
    profile = tempfile.mkdtemp(prefix="chromium-")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = DriverService(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The browser on the dashboard, and what to show when a wait fails."""

    def __init__(self, driver: Any, api: Service) -> None:
        self.driver = driver
        self.api = api

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        logs = self.driver.get_log("browser")
        raise AssertionError(
            f"timed out waiting for {what}; at {self.driver.current_url}\n"
            f"browser console: {logs}\n--- api\n{self.api.output()}"
        )

    def visible(self, selector: str) -> bool:
        return bool(
            self.js(
                "const e = document.querySelector(arguments[0]); return !!e && !e.hidden;", selector
            )
        )

    def text(self, selector: str) -> str:
        return str(
            self.js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                selector,
            )
        )

    def set_spec(self, spec: dict[str, Any]) -> None:
        self.js(
            "const t = document.getElementById('spec-input'); t.value = arguments[0];"
            "t.dispatchEvent(new Event('input'));",
            json.dumps(spec, indent=2),
        )

    def counts(self, chart: str) -> dict[str, int]:
        """Points drawn per series in one chart."""
        return dict(
            self.js(
                "const out = {};"
                "const chart = document.querySelector(`[data-chart=${arguments[0]}]`);"
                "for (const g of chart ? chart.querySelectorAll('g.series') : [])"
                "  out[g.dataset.series] = g.querySelector('polyline').points.numberOfItems;"
                "return out;",
                chart,
            )
        )

    def plot_box(self, chart: str) -> dict[str, float]:
        """Where a chart's plot area is in the viewport (CSS pixels)."""
        return dict(
            self.js(
                "return document.querySelector(`[data-chart=${arguments[0]}] .plot-area`)"
                ".getBoundingClientRect().toJSON();",
                chart,
            )
        )


def colour_pixels(png: bytes, box: dict[str, float], colour: tuple[int, int, int]) -> int:
    """Pixels within `box` (CSS pixels; the screenshot is at scale 1) close to `colour`."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    crop = image.crop((int(box["left"]), int(box["top"]), int(box["right"]), int(box["bottom"])))
    return sum(
        1
        for pixel in crop.getdata()
        if max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 40
    )


def test_dashboard_shows_a_running_jobs_curves(
    services: list[Service], tmp_path: Path, browser: Any
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp_path / 'distillery.db'}"
    env = {
        "DISTILLERY_DATABASE_URL": database_url,
        "DISTILLERY_ARTIFACT_URL": str(tmp_path / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
        "DISTILLERY_BROKER_URL": "",
        "DISTILLERY_AUTH": "required",
        "DISTILLERY_JOB_ESTIMATES": "true",  # the job's estimate vs actual table
    }
    api = start(services, "api", uvicorn_argv(port), env, tmp_path)
    wait_ready(url, api)
    with session_scope(database_url) as session:
        _, key = auth.create_key(session, "dashboard")
    page = Page(browser, api)

    # The form, with no key yet: the page asks for one, then shows the API's error shape.
    browser.get(f"{url}/#/new")
    page.wait("the submit form", lambda: page.visible("#spec-input"))
    page.set_spec(BAD_JOB)
    browser.find_element("css selector", "#submit-form button[type=submit]").click()
    page.wait("the key panel", lambda: page.visible("#key-panel"))
    browser.find_element("id", "key-input").send_keys(key)
    browser.find_element("css selector", "#key-panel button[type=submit]").click()
    # The panel closes once the service took the key, and the view is drawn again then.
    page.wait("the key accepted", lambda: not page.visible("#key-panel"))
    page.wait(
        "the form again, with the draft",
        lambda: "no_such_arch" in page.js("return document.getElementById('spec-input').value"),
    )
    # The key is kept where no script of this origin can read it (an HttpOnly cookie).
    stored = page.js(
        "return [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]"
    )
    assert all(key not in place for place in stored), stored
    browser.find_element("css selector", "#submit-form button[type=submit]").click()
    page.wait("the spec's error", lambda: page.visible("#submit-error"))
    problem = page.text("#submit-error")
    assert "invalid_request" in problem and "student.arch" in problem, problem
    page.set_spec(JOB)
    browser.find_element("css selector", "#submit-form button[type=submit]").click()
    job_url = page.wait(
        "the job page", lambda: "#/jobs/job_" in browser.current_url and browser.current_url
    )
    job_id = job_url.rsplit("/", 1)[1]

    # The student's curve grows while the job runs.
    first = page.wait(
        "the first student epochs", lambda: page.counts("loss").get("student", 0), timeout=120
    )
    assert first < DISTILL_EPOCHS, "distillation ended before the page saw it running"
    assert page.text(".job-head .status") == "running"
    page.wait("the student's curve to grow", lambda: page.counts("loss").get("student", 0) > first)

    # The finished job: all three series in full, the results, the artifacts.
    page.wait(
        "the job to succeed", lambda: page.text(".job-head .status") == "succeeded", timeout=120
    )
    page.wait("the results", lambda: page.visible("#results"))
    headers = {"Authorization": f"Bearer {key}"}
    metrics = httpx.get(f"{url}/v1/jobs/{job_id}/metrics", headers=headers).json()["data"]
    epochs = {
        s: sum(1 for m in metrics if m["stage"] == stage)
        for s, stage in (
            ("teacher", "pretrain_teacher"),
            ("student", "distill"),
            ("baseline", "baseline"),
        )
    }
    assert epochs == {"teacher": 12, "student": DISTILL_EPOCHS, "baseline": DISTILL_EPOCHS}
    for chart in ("loss", "validation"):
        page.wait(
            f"every epoch in the {chart} chart", lambda chart=chart: page.counts(chart) == epochs
        )
    assert page.counts("temperature") == {"student": DISTILL_EPOCHS}
    job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()
    assert page.js("return document.querySelectorAll('#results tr[data-model]').length") == 3
    # The frontier: a row per model, and the job's frontier.svg drawn (fetched with the key).
    frontier = page.js(
        "return [...document.querySelectorAll('#results table.frontier tr[data-frontier]')]"
        ".map((tr) => tr.dataset.frontier)"
    )
    assert frontier == [row["model"] for row in job["result"]["frontier"]["rows"]]
    page.wait(
        "the frontier plot",
        lambda: page.js(
            "const img = document.querySelector('#results .frontier-plot img');"
            "return Boolean(img && img.complete && img.naturalWidth > 0)"
        ),
    )
    retention = f"{job['result']['compression']['accuracy_retention'] * 100:.2f}%"
    assert retention in page.text("#results table.compression"), page.text("#results")
    # The diagnosis: whether distillation helped and, if not, each finding, by its code.
    diagnosis = job["result"]["diagnosis"]
    shown = page.js("return document.querySelector('#results .diagnosis').dataset.helped")
    assert shown == json.dumps(diagnosis["helped"])
    codes = page.js(
        "return [...document.querySelectorAll('#results .diagnosis li')]"
        ".map((li) => li.dataset.code)"
    )
    assert codes == [f["code"] for f in diagnosis["findings"]]
    page.wait("the artifacts", lambda: "report.json" in page.text("table.artifacts"))
    # The estimate the job made of itself, with what it did beside it.
    page.wait("the cost table", lambda: page.visible("#cost"))
    actual = job["cost"]["actual"]
    distilled = page.js(
        "return [...document.querySelectorAll('#cost tr[data-stage=distill] td')]"
        ".map((td) => td.textContent)"
    )
    steps = f"{actual['steps']['distill']:,}"
    assert distilled[2:4] == [steps, steps], distilled
    assert distilled[1] == f"{actual['stages']['distill']:.1f}", distilled
    assert "total" in page.text("#cost table.cost")

    # A download carries the key too (fetched as a blob, saved through an object URL).
    browser.find_element("link text", "report.json").click()
    saved = tmp_path / "downloads" / "report.json"
    page.wait(
        "report.json downloaded", lambda: saved.exists() and saved.stat().st_size > 0, timeout=20
    )
    assert json.loads(saved.read_text())["compression"] == job["result"]["compression"]

    # The screenshot: each series' colour inside the loss and accuracy plots.
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    png = browser.get_screenshot_as_png()
    height = page.js("return window.innerHeight")
    (tmp_path / "dashboard.png").write_bytes(png)
    if os.environ.get("DISTILLERY_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(png)
    for chart in ("loss", "validation"):
        box = page.plot_box(chart)
        assert box["bottom"] <= height, f"the {chart} chart is below the fold: {box}"
        found = {name: colour_pixels(png, box, colour) for name, colour in COLOURS.items()}
        assert all(n >= 150 for n in found.values()), (chart, found)
    # Only the student has a temperature: the colour test tells the series apart.
    found = {
        name: colour_pixels(png, page.plot_box("temperature"), c) for name, c in COLOURS.items()
    }
    assert found["student"] >= 150 and found["teacher"] == found["baseline"] == 0, found

    # The list: the job, succeeded, at 100%.
    browser.get(f"{url}/#/")
    row = f"tr[data-job='{job_id}']"
    page.wait("the job in the list", lambda: page.text(f"{row} .status") == "succeeded")
    assert page.text(f"{row} .progress span") == "100%"
