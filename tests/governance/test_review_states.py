"""Review as a state machine (issue 25): every transition, fresh ids and superseded runs,
decisions racing, identities, self-review and four-eyes, and a crash in the middle of a
change reconciled by the next one."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from kinema.governance import audit, review
from kinema.governance.review import FourEyesError, ReviewError, StateError
from kinema.io import Video
from kinema.provenance.c2pa import read_manifest
from kinema.provenance.keys import ensure_keys
from kinema.state import kinema_home

SETTINGS = {"prompt": "a red circle", "seed": 1}
ALICE, BOB = "token:a11ce000", "token:b0b00000"
ME = f"local:{os.getuid()}"


@pytest.fixture
def keys():
    return ensure_keys(kinema_home())[0]


def clip(tmp_path: Path, name: str = "clip.gif", seed: int = 0) -> Path:
    path = tmp_path / name
    Video(np.random.default_rng(seed).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), fps=8).save(path)
    return path


def item_in(state: str, tmp_path: Path, name: str) -> review.ReviewItem:
    """A fresh item brought into STATE the way users do."""
    path = clip(tmp_path, name)
    item = review.register(path, SETTINGS, "clip")
    if state == "approved":
        review.approve(item.id, reviewer=BOB)
    elif state == "rejected":
        review.reject(item.id, reviewer=BOB)
    elif state == "withdrawn":
        review.approve(item.id, reviewer=BOB)
        review.withdraw(item.id, reviewer=BOB)
    elif state == "superseded":
        review.register(path, SETTINGS, "clip")  # a later run of the same path
    return review.get(item.id)


ALLOWED = {("pending", "approve"), ("pending", "reject"), ("approved", "withdraw"), ("approved", "export")}


@pytest.mark.parametrize("state", review.STATUSES)
@pytest.mark.parametrize("action", ["approve", "reject", "withdraw", "export"])
def test_every_state_and_action(tmp_path, keys, state, action):
    item = item_in(state, tmp_path, f"{state}-{action}.gif")
    assert item.status == state
    out = tmp_path / f"out-{state}-{action}.gif"
    act = (
        (lambda: review.export(item.id, out))
        if action == "export"
        else (lambda: getattr(review, action)(item.id, reviewer=BOB))
    )
    if (state, action) in ALLOWED:
        act()
        return
    before = len(audit.read_log())
    with pytest.raises(StateError) as info:
        act()
    message = str(info.value)
    assert f"item {item.id} is {state}" in message and "\n" not in message  # one line, naming the state
    assert review.get(item.id).status == state and not out.exists()
    assert len(audit.read_log()) == before  # a refusal changes nothing, logs nothing


def test_reject_then_approve_then_export_is_refused(tmp_path, keys):
    # issue 25, Why 1: reject, approve, export published (exit 0)
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    review.reject(item.id)
    with pytest.raises(StateError, match=r"is rejected \(final\); only a pending item can be approved"):
        review.approve(item.id)
    with pytest.raises(StateError, match="only approved items can be exported"):
        review.export(item.id, tmp_path / "out.gif")
    assert not (tmp_path / "out.gif").exists() and not (tmp_path / "out.gif.json").exists()


def test_a_new_registration_never_resets_a_decision(tmp_path, keys):
    path = clip(tmp_path)
    first = review.register(path, SETTINGS, "clip")
    review.reject(first.id)
    second = review.register(path, SETTINGS, "clip")  # the same command again
    assert second.id != first.id and second.status == "pending"
    assert review.get(first.id).status == "rejected"  # final: not reset, not superseded
    third = review.register(path, SETTINGS, "clip")
    assert review.get(second.id).status == "superseded" and third.status == "pending"
    assert [i.id for i in review.list_items("pending")] == [third.id]
    register = [
        r for r in audit.read_log() if r["event"] == "review.register" and r["fields"]["phase"] == "intent"
    ]
    assert register[-1]["fields"]["supersedes"] == [second.id]


def test_an_approved_item_is_superseded_by_a_later_run(tmp_path, keys):
    path = clip(tmp_path)
    first = review.register(path, SETTINGS, "clip")
    review.approve(first.id)
    review.register(path, SETTINGS, "clip")
    with pytest.raises(StateError, match=r"is superseded \(a later run replaced its file\)"):
        review.export(first.id, tmp_path / "out.gif")


def test_withdrawn_items_are_never_exported_again(tmp_path, keys):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    review.approve(item.id)
    review.export(item.id, tmp_path / "first.gif")
    withdrawn = review.withdraw(item.id, note="licence ended")
    assert withdrawn.status == "withdrawn" and withdrawn.note == "licence ended"
    with pytest.raises(StateError, match=r"is withdrawn \(final\); only approved items can be exported"):
        review.export(item.id, tmp_path / "second.gif")
    assert not (tmp_path / "second.gif").exists()


def test_identities(tmp_path):
    assert review.local_identity() == ME
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    assert item.creator == ME
    for bad in ("alice", "web:alice", "token:", "local:x", "token:a b"):
        with pytest.raises(ReviewError, match="is not an identity"):
            review.approve(item.id, reviewer=bad)
    with pytest.raises(ReviewError, match="is not an identity"):
        review.register(clip(tmp_path, "b.gif"), SETTINGS, "clip", creator="bob")
    assert review.get(item.id).status == "pending"


def test_self_review_is_allowed_and_recorded(tmp_path, keys):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    approved = review.approve(item.id)  # made and approved by local:<uid>
    assert approved.self_review and approved.reviewer == ME == approved.creator
    out = review.export(item.id, tmp_path / "out.gif")
    recorded = read_manifest(out, keys.root_cert)["active_manifest"]["review"]
    assert recorded["self_review"] is True and recorded["creator"] == ME and recorded["reviewer"] == ME
    assert recorded["item"] == item.id


def test_a_callers_creator_counts_as_the_maker(tmp_path):
    # the web knows the token that owns a take; a worker may have filed it as local:<uid>
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    assert review.approve(item.id, reviewer=ALICE, creator=ALICE).self_review
    other = review.register(clip(tmp_path, "b.gif", 1), SETTINGS, "clip", creator=ALICE)
    assert other.creator == ALICE and not review.approve(other.id, reviewer=BOB, creator=ALICE).self_review


def test_four_eyes_forbids_approving_ones_own_items(tmp_path):
    assert review.four_eyes() is False
    assert review.set_four_eyes(True) is True and review.four_eyes() is True
    assert review.set_four_eyes(True) is False  # already on: nothing logged
    policy = [r for r in audit.read_log() if r["event"] == "review.policy"]
    assert [r["fields"]["phase"] for r in policy] == ["intent", "done"]
    assert policy[0]["fields"]["four_eyes"] == "on" and policy[0]["fields"]["by"] == ME
    mine = review.register(clip(tmp_path), SETTINGS, "clip")
    with pytest.raises(FourEyesError, match="four-eyes review is on, so someone else must approve it"):
        review.approve(mine.id)
    theirs = review.register(clip(tmp_path, "b.gif", 1), SETTINGS, "clip", creator=ALICE)
    with pytest.raises(FourEyesError):
        review.approve(theirs.id, reviewer=ALICE)
    with pytest.raises(FourEyesError):
        review.approve(mine.id, reviewer=BOB, creator=BOB)  # the web's owner of the take
    assert review.get(mine.id).status == "pending"
    assert not review.approve(mine.id, reviewer=BOB).self_review
    assert review.reject(theirs.id, reviewer=ALICE).status == "rejected"  # rejecting one's own is fine
    assert (
        review.set_four_eyes(False) is True
        and review.approve(review.register(clip(tmp_path, "c.gif", 2), SETTINGS, "clip").id).self_review
    )


# ----------------------------------------------------------------------------- races


def _decide_after_barrier(barrier, action: str, item_id: str, results) -> None:
    try:
        getattr(review, action)(item_id, reviewer=BOB)
        results.put((action, "ok"))
    except StateError as exc:
        results.put((action, str(exc)))


def _race(item_id: str, kind: str) -> list[tuple[str, str]]:
    """Approve and reject ITEM_ID at once in two threads or two forked processes (KIND).
    Both read the item as pending before either writes (a barrier sits in the gate, after
    the early read), so only the conditional update inside BEGIN IMMEDIATE can tell them
    apart. Returns each side's (action, "ok" or the refusal)."""
    if kind == "threads":
        import queue

        barrier, results, start = threading.Barrier(2), queue.Queue(), threading.Thread
    else:
        context = multiprocessing.get_context("fork")
        barrier, results, start = context.Barrier(2), context.Queue(), context.Process
    real_gate = review.check_gate

    def gate() -> None:
        real_gate()
        barrier.wait(30)

    review.check_gate = gate
    try:
        workers = [
            start(target=_decide_after_barrier, args=(barrier, a, item_id, results))
            for a in ("approve", "reject")
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(60)
        return outcomes
    finally:
        review.check_gate = real_gate


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_approve_and_reject_racing_exactly_one_wins(tmp_path, kind):
    for trial in range(20):
        item = review.register(clip(tmp_path, f"{kind}{trial}.gif", trial), SETTINGS, "clip")
        outcomes = _race(item.id, kind)
        winners = [a for a, r in outcomes if r == "ok"]
        assert len(winners) == 1, outcomes
        final = review.get(item.id).status
        assert final == {"approve": "approved", "reject": "rejected"}[winners[0]]
        loser = next(r for _, r in outcomes if r != "ok")
        assert f"item {item.id} is {final}" in loser  # refused, naming the state it found
    ok, problem, _ = audit.verify_log()
    assert ok, problem
    assert not audit.verify().open_intents  # every intent has its done entry


# ----------------------------------------------------------------------------- crashes


def _crash_in(step: str, path: str) -> None:
    """In a child process: register PATH and die at STEP, as a power cut would."""
    if step == "before commit":
        real = audit.write_anchor

        def dying(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(9)  # the file is renamed in, the transaction never commits

        audit.write_anchor = dying
    else:
        audit.done = lambda *args, **kwargs: os._exit(9)  # committed, no done entry
    target = Path(path)
    staged = target.with_name(".staged" + target.suffix)
    Video(np.zeros((2, 16, 16, 3), np.uint8), fps=8).save(staged)
    review.register(target, SETTINGS, "clip", staged=staged, install=lambda: os.replace(staged, target))


@pytest.mark.parametrize("step", ["before commit", "before done"])
def test_a_change_a_crash_interrupted_is_reconciled(tmp_path, step):
    context = multiprocessing.get_context("fork")
    target = tmp_path / "crashed.gif"
    proc = context.Process(target=_crash_in, args=(step, str(target)))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9 and target.exists()
    opened = audit.verify().open_intents
    assert [r["event"] for r in opened] == ["review.register"]
    committed = step == "before done"
    assert bool(review.list_items()) == committed
    review.register(clip(tmp_path, "next.gif"), SETTINGS, "clip")  # the next change reconciles first
    done = [r for r in audit.read_log() if r["fields"].get("intent") == opened[0]["hash"]]
    assert len(done) == 1 and done[0]["fields"]["reconciled"] is True
    if committed:
        assert done[0]["fields"]["outcome"] == "applied" and target.exists()
    else:  # the file appeared without its item: removed
        assert done[0]["fields"]["outcome"].startswith("rolled back") and not target.exists()
    assert not audit.verify().open_intents and audit.verify_log()[0]
