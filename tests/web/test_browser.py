"""The studio in a real browser: Debian's chromium driven by Playwright, against a real
`kinema serve` with a tiny model. Screenshots of every page go to test-artifacts/."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("KINEMA_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
PROMPT = "a red circle moving right on a black background"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (.ci/run installs it)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_model, tmp_path):
    port = _free_port()
    env = {**os.environ, "KINEMA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).with_name("kinema")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", "1", "--model", str(tiny_model)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    for line in proc.stderr:
        match = re.search(r"(http://\S+/login\?token=\S+)", line)
        if match:
            url = match.group(1)
            break
    assert url, "serve printed no login URL"
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _until(page, expression: str, seconds: float = 60) -> None:
    """Poll a JavaScript expression until it is true (the page's CSP forbids the eval that
    Playwright's wait_for_function uses)."""
    for _ in range(int(seconds * 5)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"never true: {expression}")


def test_studio_in_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(server)  # the login URL sets the cookie and lands on the studio
        expect(page.locator("#job-form")).to_be_visible()
        page.fill("textarea[name=prompt]", PROMPT)
        page.fill("input[name=frames]", "9")
        page.fill("input[name=steps]", "2")
        page.fill("input[name=seed]", "3")
        page.click("button[type=submit]")
        expect(page.locator("#form-status")).to_contain_text("queued")
        seen = set()
        take = page.locator(".take").first
        for _ in range(600):
            seen.add(take.get_attribute("data-status"))
            if "done" in seen:
                break
            page.wait_for_timeout(200)
        assert "done" in seen and seen & {"queued", "running"}, seen
        video = page.locator(".take video").first
        expect(video).to_be_visible()
        _until(page, "document.querySelector('.take video').readyState >= 2", 30)
        page.screenshot(path=str(ARTIFACTS / "studio.png"), full_page=True)

        page.click('.take [data-act="again"]')  # more like this: a second take, new seed
        _until(page, "document.querySelectorAll('.take[data-status=\"done\"]').length >= 2", 120)
        with page.expect_download() as download:
            page.click('.take[data-status="done"] [data-act="download"]')
        saved = tmp_path / "take.mp4"
        download.value.save_as(saved)
        assert saved.stat().st_size > 1000

        page.click('.take[data-status="done"] [data-act="compare"]')
        _until(
            page,
            "document.querySelector('#video-a').readyState >= 2 && "
            "document.querySelector('#video-b').readyState >= 2",
            30,
        )
        page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

        page.goto(server.split("/login")[0] + "/review")
        expect(page.locator("#review-list .take").first).to_be_visible()
        page.locator("#review-list .note").first.fill("looks right")
        pending = page.locator("#review-list .take").count()
        page.locator('#review-list [data-act="approve"]').first.click()
        expect(page.locator("#review-list .take")).to_have_count(pending - 1)
        page.select_option("#review-status", "approved")
        expect(page.locator("#review-list .meta").first).to_contain_text("approved")
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

        page.goto(server.split("/login")[0] + "/verify")
        page.set_input_files("#verify-form input[name=file]", str(saved))
        page.click("#verify-form button[type=submit]")
        expect(page.locator("#verify-summary")).to_contain_text("C2PA: Trusted", timeout=30_000)
        # (the watermark itself is tested on shapes content: an untrained tiny model draws
        # 64x64 noise, on which a 38 dB mark is below the detection threshold)
        page.screenshot(path=str(ARTIFACTS / "verify.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(server)
        expect(phone.locator("#job-form")).to_be_visible()
        wide = phone.evaluate(
            "[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > 391)"
            ".map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, wide[:8]
        phone.screenshot(path=str(ARTIFACTS / "studio-phone.png"), full_page=True)
        browser.close()
