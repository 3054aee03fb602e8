"""The demo page in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium).

The server runs `python -m nst.demo` on a free local port with a zoo of tiny random models.
"""

import io
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, script_env
from demo_helpers import build_tiny_zoo
from PIL import Image

from nst import zoo

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1800",
]
WAIT = 180  # s, the most any one step of the page may take on a busy CPU

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.is_file() and CHROMEDRIVER.exists()):
    pytest.fail(
        f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver",
        pytrace=False,
    )
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The demo's URL, served from a subprocess with a tiny zoo; stopped afterwards."""
    folder = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo, "FOLDER", folder)
        patch.setattr(zoo, "REGISTRY", folder / "registry.json")
        build_tiny_zoo(folder, arbitrary=False)
    port = free_port()
    env = {**script_env(), "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    options = {"--zoo": folder, "--port": port, "--vgg-weights": "random", "--device": "cpu"}
    command = [
        sys.executable,
        "-m",
        "nst.demo",
        *(str(x) for item in options.items() for x in item),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("nst demo: "):
                break
        url = line.removeprefix("nst demo: ").strip()
        assert url == f"http://127.0.0.1:{port}/", "".join(lines)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    """A headless Chromium with a fresh profile that saves downloads to `downloads`."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="nst-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile.name}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def until(driver, condition):
    """Wait for `condition(driver)` to be true (or fail after WAIT seconds)."""
    return WebDriverWait(driver, WAIT).until(condition)


def message(driver) -> str:
    return driver.find_element(By.ID, "message").text


def open_page(driver, url: str) -> None:
    driver.get(url)
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#zoo-gallery button.thumbnail-item"))


def fetch_image(url: str) -> Image.Image:
    with urllib.request.urlopen(url) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def set_number(driver, element_id: str, value: int) -> None:
    """Type `value` into the number box of slider `element_id`."""
    box = driver.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=number]")
    box.clear()
    box.send_keys(str(value), "\t")


def test_a_text_upload_is_one_clear_message(server, browser, tmp_path):
    open_page(browser, server)
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo")
    browser.find_element(By.CSS_SELECTOR, "#photo-upload input[type=file]").send_keys(str(notes))
    until(browser, lambda d: "notes.txt" in message(d))
    assert message(browser) == (
        "⚠ notes.txt is not an image this page can read; upload a PNG, JPEG or WebP file."
    )


def test_a_sample_photo_in_a_zoo_style_comes_back_stylised(server, browser, downloads):
    open_page(browser, server)
    browser.find_element(By.CSS_SELECTOR, "#photo-sample input").click()
    browser.find_element(By.CSS_SELECTOR, '#photo-sample li[aria-label="coffee"]').click()
    until(browser, lambda d: message(d) == "Photo: coffee")
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#zoo-gallery button.thumbnail-item")
    assert [t.text for t in thumbnails] == ["candy", "wave"]
    thumbnails[1].click()
    until(browser, lambda d: message(d) == "Style: wave.")
    browser.find_element(By.ID, "zoo-stylise").click()
    until(browser, lambda d: "in the style of" in message(d))
    assert message(browser) == "coffee in the style of wave: 512×341 px."
    result = fetch_image(browser.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src"))
    assert result.size == (512, 341)  # the sample coffee photo is 600×400
    photo = fetch_image(
        browser.find_element(By.CSS_SELECTOR, "#photo-preview img").get_attribute("src")
    )
    difference = np.abs(np.asarray(result.resize(photo.size), float) - np.asarray(photo, float))
    assert difference.mean() > 5
    browser.find_element(By.ID, "download").click()
    saved = downloads / "coffee_wave.png"
    until(browser, lambda d: saved.is_file())
    assert Image.open(saved).size == (512, 341)


def test_a_zoo_style_runs_in_one_tab_while_another_optimises_until_cancelled(server, browser):
    open_page(browser, server)
    optimising_tab = browser.current_window_handle
    set_number(browser, "size", 256)
    browser.find_element(By.CSS_SELECTOR, "#tab-optimise-button").click()
    set_number(browser, "iterations", 1000)
    browser.find_element(By.ID, "optimise").click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#result img"))  # step 10's image
    assert "basic: step" in message(browser)

    browser.switch_to.new_window("tab")
    open_page(browser, server)
    browser.find_element(By.ID, "zoo-stylise").click()
    until(browser, lambda d: "in the style of" in message(d))
    assert message(browser).startswith("chelsea in the style of candy: 512×")
    browser.close()

    browser.switch_to.window(optimising_tab)
    assert "basic: step" in message(browser) and "of 1000" in message(browser)
    browser.find_element(By.ID, "cancel").click()
    until(browser, lambda d: message(d).startswith("Cancelled after "))
    steps = int(message(browser).split()[2])
    assert 10 <= steps < 1000 and message(browser).endswith(" of 1000 steps."), message(browser)
