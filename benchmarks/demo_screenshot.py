"""The README's screenshot of the demo page: the real zoo, a sample photo, one zoo style.

    python benchmarks/demo_screenshot.py [--photo chelsea] [--style starry_night]
        [--output docs/demo_page.jpg]

Starts `python -m nst.demo` on a free local port, drives Debian's headless Chromium (Selenium,
`/usr/bin/chromium` and `/usr/bin/chromedriver`, nothing downloaded) through the same clicks a
user makes, and saves the finished page as a JPEG.
"""

import argparse
import io
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(port: int) -> tuple[subprocess.Popen, str]:
    """The demo server on `port`, once it has printed its URL."""
    command = [sys.executable, "-m", "nst.demo", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in process.stdout:
        if line.startswith("nst demo: "):
            return process, line.removeprefix("nst demo: ").strip()
    raise SystemExit(f"the demo did not start: {process.wait()}")


def screenshot(url: str, photo: str, style: str, width: int, height: int) -> Image.Image:
    """Pick the sample `photo` and the zoo `style`, stylise, and capture the page."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.TemporaryDirectory(prefix="nst-chromium-")
    for flag in [*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile.name}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 300)
    try:
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#zoo-gallery button"))
        driver.find_element(By.CSS_SELECTOR, "#photo-sample input").click()
        driver.find_element(By.CSS_SELECTOR, f'#photo-sample li[aria-label="{photo}"]').click()
        wait.until(lambda d: d.find_element(By.ID, "message").text == f"Photo: {photo}")
        thumbnails = driver.find_elements(By.CSS_SELECTOR, "#zoo-gallery button.thumbnail-item")
        for thumbnail in thumbnails:
            if thumbnail.text == style:
                thumbnail.click()
        wait.until(lambda d: d.find_element(By.ID, "message").text == f"Style: {style}.")
        driver.find_element(By.ID, "zoo-stylise").click()
        wait.until(lambda d: "in the style of" in d.find_element(By.ID, "message").text)
        driver.execute_script("window.scrollTo(0, 0)")
        return Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    finally:
        driver.quit()
        profile.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", default="chelsea")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--size", default="1400x1300", help="browser window, WIDTHxHEIGHT")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "demo_page.jpg")
    args = parser.parse_args()
    width, height = (int(value) for value in args.size.split("x"))
    process, url = start_demo(free_port())
    try:
        image = screenshot(url, args.photo, args.style, width, height)
    finally:
        process.terminate()
        process.wait(timeout=60)
    image.save(args.output, quality=85, optimize=True)
    print(f"wrote {args.output} ({image.width}×{image.height}, {url})")


if __name__ == "__main__":
    main()
