"""A narrated mp4 plays in a real browser with its sound: Debian's chromium, driven by
Playwright, loads it from a local HTTP server, plays it, and its clock and audio decoder
both move."""

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from kinema.io import Video, write_video
from kinema.voice.narrate import narrate_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (.ci/run installs it)"
)


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on a free local port (range requests are not needed:
    the file is small and chromium reads it whole)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_narrated_mp4_plays_with_sound_in_chromium(served):
    from playwright.sync_api import sync_playwright

    folder, base = served
    frames = np.zeros((32, 64, 64, 3), np.uint8)
    frames[:, 16:48, 16:48, 0] = 200
    video, _ = narrate_video(
        Video(frames, 8.0), "A red square on black.", voice="amber", disclose_aloud=False
    )
    write_video(video, folder / "narrated.mp4")
    (folder / "index.html").write_text('<video id="v" src="narrated.mp4" preload="auto"></video>')
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        page = browser.new_page()
        page.goto(f"{base}/index.html")
        page.evaluate("document.getElementById('v').play()")
        state = {}
        for _ in range(100):  # up to 10 s
            state = page.evaluate(
                "(() => { const v = document.getElementById('v'); return {t: v.currentTime,"
                " audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount,"
                " error: v.error && v.error.code, duration: v.duration}; })()"
            )
            if state["error"] or (state["t"] > 1.0 and state["audio"] > 0):
                break
            page.wait_for_timeout(100)
        browser.close()
    assert not state["error"], f"chromium could not play the file: media error {state['error']}"
    assert state["t"] > 1.0, state  # the clock advanced: it is playing
    assert state["audio"] > 0 and state["video"] > 0, state  # both streams decoded
    assert abs(state["duration"] - 4.0) < 0.1, state
