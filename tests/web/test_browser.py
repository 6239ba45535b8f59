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
    yield from _serve(tiny_model, tmp_path)


@pytest.fixture
def controlled_server(controlled_model, tmp_path):
    yield from _serve(controlled_model, tmp_path)


def _serve(model, tmp_path):
    port = _free_port()
    env = {**os.environ, "KINEMA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).with_name("kinema")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", "1", "--model", str(model)],
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
    _wait_for_port(port)  # the URL is printed before the app has started
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for_port(port: int, seconds: float = 60) -> None:
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def _until(page, expression: str, seconds: float = 60) -> None:
    """Poll a JavaScript expression until it is true (the page's CSP forbids the eval that
    Playwright's wait_for_function uses)."""
    for _ in range(int(seconds * 5)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"never true: {expression}")


def test_studio_in_chromium(server, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
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
        lines = set()  # what the form's status line said meanwhile
        take = page.locator(".take").first
        for _ in range(600):
            seen.add(take.get_attribute("data-status"))
            lines.add(page.locator("#form-status").text_content())
            if "done" in seen:
                break
            page.wait_for_timeout(200)
        assert "done" in seen and seen & {"queued", "running"}, seen
        # the status line follows the job to its end (polling it), not stopping at "queued"
        status = page.locator("#form-status")
        expect(status).to_have_text(re.compile(r"^done \(seed 3\) · open the take$"), timeout=30_000)
        expect(status.locator("a")).to_have_attribute(
            "href", f"/api/jobs/{take.get_attribute('data-id')}/file"
        )
        assert {re.sub(r" (step|\().*", "", line) for line in lines} <= {"queued", "running", "done"}, lines
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

        # a job cancelled while it waits behind another: the status line ends at "cancelled"
        page.goto(server.split("/login")[0] + "/")
        page.fill("textarea[name=prompt]", PROMPT)
        page.fill("input[name=frames]", "9")
        page.fill("input[name=steps]", "100")
        for seed in ("424242", "535353"):  # one worker: the second stays queued
            page.fill("input[name=seed]", seed)
            page.click("#job-form button[type=submit]")
            expect(page.locator("#form-status")).to_contain_text(f"(seed {seed})")
        waiting = page.locator(".take").filter(has_text=re.compile(r"seed 535353\b"))
        waiting.locator('[data-act="cancel"]').click()
        expect(page.locator("#form-status")).to_have_text("cancelled (seed 535353)")
        running = page.locator(".take").filter(has_text=re.compile(r"seed 424242\b"))
        cancel = running.locator('[data-act="cancel"]')
        try:  # frees the worker; it may have just finished, and its button gone
            cancel.click(timeout=5_000)
        except PlaywrightTimeout:
            assert running.get_attribute("data-status") in ("done", "failed", "cancelled")
        _until(page, "!document.querySelector('.take[data-status=queued], .take[data-status=running]')", 60)

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


def _launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    )


def _done(page, count: int, seconds: float = 180) -> None:
    _until(page, f"document.querySelectorAll('.take[data-status=\"done\"]').length >= {count}", seconds)


def test_extend_remix_inpaint_loop_publish_in_chromium(server, tmp_path):
    """Edit a take through the gallery's buttons (extend, remix, inpaint with a painted
    mask, loop), publish an approved one, and read the offline API reference."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    origin = server.split("/login")[0]
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(server)
        page.fill("textarea[name=prompt]", PROMPT)
        page.fill("input[name=frames]", "9")
        page.fill("input[name=steps]", "2")
        page.fill("input[name=seed]", "3")
        page.click("#job-form button[type=submit]")
        _done(page, 1)
        first = page.locator(".take").first
        source = first.get_attribute("data-id")
        for act in ("extend", "remix", "inpaint", "outpaint", "loop"):
            expect(first.locator(f'[data-act="{act}"]')).to_be_visible()

        # extend: four new frames after the take
        first.locator('[data-act="extend"]').click()
        dialog = page.locator("#edit")
        expect(dialog).to_be_visible()
        expect(dialog.locator("textarea[name=prompt]")).to_have_value(PROMPT)
        dialog.locator("input[name=frames]").fill("4")
        dialog.locator("input[name=steps]").fill("2")
        page.screenshot(path=str(ARTIFACTS / "edit-extend.png"))
        dialog.locator("#edit-go").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#form-status")).to_contain_text("extend queued")
        _done(page, 2)
        newest = page.locator(".take").first
        expect(newest.locator(".meta")).to_contain_text("extend forward +4 frames")
        expect(newest.locator(".meta")).to_contain_text(f"of {source[:6]}")
        # an edit's output can be edited again, but not looped (it is not a generation)
        expect(newest.locator('[data-act="loop"]')).to_be_hidden()
        _until(page, "document.querySelector('.take video').duration > 1.5", 30)  # 13 frames at 8 fps

        # remix at a low strength
        take = page.locator(f'.take[data-id="{source}"]')
        take.locator('[data-act="remix"]').click()
        dialog.locator("input[name=steps]").fill("2")
        dialog.locator("input[name=strength]").fill("0.3")
        expect(dialog.locator("#strength-value")).to_have_text("0.3")
        dialog.locator("#edit-go").click()
        _done(page, 3)
        expect(page.locator(".take").first.locator(".meta")).to_contain_text("remix at 0.3")

        # inpaint: queueing without a mask is refused in the dialog; then paint one
        take.locator('[data-act="inpaint"]').click()
        dialog.locator("input[name=steps]").fill("2")
        dialog.locator("#edit-go").click()
        expect(dialog.locator("#edit-status")).to_contain_text("paint the region")
        box = dialog.locator("#paint-mask").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8, steps=12)
        page.mouse.up()
        page.screenshot(path=str(ARTIFACTS / "edit-inpaint.png"))
        dialog.locator("#edit-go").click()
        expect(dialog).to_be_hidden()
        _done(page, 4)
        expect(page.locator(".take").first.locator(".meta")).to_contain_text("inpaint")

        # loop: the same prompt and seed as a seamless 30-frame loop
        take.locator('[data-act="loop"]').click()
        _done(page, 5, 300)
        looped = page.locator(".take").first
        expect(looped.locator(".meta")).to_contain_text("loop")
        expect(looped.locator(".meta")).to_contain_text("seed 3")

        # a clip of the user's own, uploaded and extended in the same dialog
        from kinema.io import Video, write_video
        from kinema.world import parse, render_frames

        mine = write_video(Video(render_frames(parse(PROMPT), frames=9), 8.0), tmp_path / "mine.mp4")
        page.set_input_files("#clip-form input[name=clip]", str(mine))
        page.select_option("#clip-form select[name=mode]", "extend")
        page.click("#clip-form button[type=submit]")
        expect(dialog).to_be_visible()
        expect(page.locator("#edit-title")).to_contain_text("Extend clip mine.mp4")
        dialog.locator("textarea[name=prompt]").fill(PROMPT)
        dialog.locator("input[name=frames]").fill("4")
        dialog.locator("input[name=steps]").fill("2")
        dialog.locator("#edit-go").click()
        expect(dialog).to_be_hidden()
        _done(page, 6)
        expect(page.locator(".take").first.locator(".meta")).to_contain_text("of your clip")
        _until(page, "document.querySelector('.take video').duration > 1.5", 30)  # 9 + 4 frames
        page.screenshot(path=str(ARTIFACTS / "studio-edits.png"), full_page=True)
        # every take shows its review state; Publish is offered only on approved takes (issue 25)
        expect(looped.locator(".meta")).to_contain_text("review: pending")
        expect(looped.locator('[data-act="publish"]')).to_be_hidden()

        # review: approve the extended take, publish it, download the published copy
        page.goto(origin + "/review")
        item = page.locator("#review-list .take").filter(has_text="extend").first
        expect(item).to_be_visible()
        expect(item.locator('[data-act="publish"]')).to_be_hidden()  # pending: not publishable
        item.locator('[data-act="approve"]').click()
        page.select_option("#review-status", "approved")
        approved = page.locator("#review-list .take").first
        expect(approved.locator('[data-act="withdraw"]')).to_be_visible()
        expect(approved.locator('[data-act="approve"]')).to_be_hidden()
        approved.locator('[data-act="publish"]').click()
        # publishing watermarks, writes and signs the take on the server: seconds on a busy CPU
        expect(approved.locator('[data-act="published"]')).to_be_visible(timeout=30_000)
        with page.expect_download() as download:
            approved.locator('[data-act="published"]').click()
        published = tmp_path / "published.mp4"
        download.value.save_as(published)
        page.screenshot(path=str(ARTIFACTS / "review-published.png"), full_page=True)

        # the API reference: drawn on the server, nothing fetched from elsewhere
        page.goto(origin + "/docs")
        expect(page.locator("h1")).to_contain_text("API")
        expect(page.locator('.endpoint[id="post--api-jobs"]')).to_contain_text("outpaint")
        page.screenshot(path=str(ARTIFACTS / "docs.png"))
        browser.close()
    outside = [u for u in requested if not u.startswith(origin) and not u.startswith(("blob:", "data:"))]
    assert not outside, outside
    from kinema.provenance.verify import verify_file

    claims = verify_file(published)["c2pa"]["claims"]
    assert claims["review"]["decision"] == "approved"
    assert [a["action"] for a in claims["actions"]][-1] == "c2pa.published"


def test_an_image_take_in_chromium(server):
    """The form's Image choice hides what a still cannot have, and its take is shown as an
    <img>, with no edits offered, in the studio and on the review page."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(server)
        page.select_option("#job-form select[name=kind]", "image")
        for name in ("frames", "last_image", "loop"):
            expect(page.locator(f"#job-form [name={name}]")).to_be_hidden()
        page.fill("textarea[name=prompt]", PROMPT)
        page.fill("input[name=steps]", "2")
        page.fill("input[name=seed]", "7")
        page.click("#job-form button[type=submit]")
        expect(page.locator("#form-status")).to_have_text(
            re.compile(r"^done \(seed 7\) · open the take$"), timeout=120_000
        )
        take = page.locator(".take").first
        expect(take).to_have_attribute("data-kind", "image")
        expect(take.locator(".meta")).to_contain_text("image")
        expect(take.locator("img")).to_be_visible()
        expect(take.locator("video")).to_be_hidden()
        _until(page, "document.querySelector('.take img').naturalWidth === 64", 30)
        for act in ("again", "download", "delete"):
            expect(take.locator(f'[data-act="{act}"]')).to_be_visible()
        expect(take.locator(".meta")).to_contain_text("review: pending")
        # a pending take is not offered for publishing (issue 25)
        for act in ("extend", "remix", "inpaint", "outpaint", "loop", "compare", "publish"):
            expect(take.locator(f'[data-act="{act}"]')).to_be_hidden()
        expect(take.locator('[data-act="download"]')).to_have_attribute(
            "href", f"/api/jobs/{take.get_attribute('data-id')}/file?download=true"
        )
        page.screenshot(path=str(ARTIFACTS / "studio-image.png"), full_page=True)
        page.select_option("#job-form select[name=kind]", "clip")  # a clip's options come back
        expect(page.locator("#job-form [name=frames]")).to_be_visible()

        page.goto(server.split("/login")[0] + "/review")
        item = page.locator("#review-list .take").first
        expect(item.locator(".meta")).to_contain_text("image")
        expect(item.locator("img")).to_be_visible()
        expect(item.locator("video")).to_be_hidden()
        browser.close()


def test_motion_brush_in_chromium(controlled_server):
    """Draw a path on the first frame with the mouse: it is sent as a path file of one
    point a frame, at an even pace, and the worker makes the clip along it."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(controlled_server)
        brush = page.locator("#brush-path")
        expect(brush).to_be_visible()
        box = brush.bounding_box()
        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.3 * box["height"])
        page.mouse.down()
        for i in range(1, 11):  # a straight stroke to (0.8, 0.6)
            page.mouse.move(
                box["x"] + (0.2 + 0.06 * i) * box["width"], box["y"] + (0.3 + 0.03 * i) * box["height"]
            )
        page.mouse.up()
        points = page.evaluate("brushPath(9).points")
        assert [p[0] for p in points] == list(range(9))
        assert (
            abs(points[0][1] - 0.2) < 0.02
            and abs(points[-1][1] - 0.8) < 0.02
            and abs(points[4][2] - 0.45) < 0.02
        )
        page.fill("textarea[name=prompt]", "a red circle on a black background")
        page.fill("input[name=frames]", "9")
        page.fill("input[name=steps]", "2")
        page.click("#job-form button[type=submit]")
        _done(page, 1)
        job = page.evaluate("fetch('/api/jobs').then(r => r.json()).then(d => d.items[0])")
        assert job["params"]["path"] and job["params"]["control_scale"] == 1.0
        page.screenshot(path=str(ARTIFACTS / "motion-brush.png"), full_page=True)
        page.click("#brush-clear")
        page.select_option("select[name=kind]", "image")
        expect(page.locator("#motion")).to_be_hidden()  # a still has no motion
        browser.close()
