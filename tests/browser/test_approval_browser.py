"""The human gate in the real Airflow UI: one promotion approved, another rejected, by a person in
Chromium, with a real scheduler, dag-processor, api-server and triggerer
(``AIRLOOP_PROMOTION_APPROVAL=approve``).

The data are the real replayed window of ``tests/e2e/test_train_e2e.py`` (prepared with the
library). Run 1 trains the first model (the gate lets it past the baseline); the admin approves it
on the task's *Required Action* page with a reason: v1 becomes the champion and the registry's
history names the admin. Run 2 trains a better model (100 rounds; the gate lets it past v1); the
admin rejects it with a reason: v1 stays, v2 is ``rejected`` with that reason. Screenshots go to
``test-artifacts/browser/approval-*``.

Run alone on shared machines: ``flock /tmp/airloop-e2e.lock pytest tests/browser/test_approval_browser.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import ADMIN_PASSWORD, ADMIN_USER, AirflowStack  # noqa: E402
from test_train_e2e import FIRST, LAST, MODEL_NAME, PREPARE  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "browser"
START_TIMEOUT_S = float(os.environ.get("AIRLOOP_E2E_START_TIMEOUT_S", "420"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/ensure-chromium.sh)"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, loaded_source):
    root = tmp_path_factory.mktemp("approval-stack")
    stack = AirflowStack(root / "home", root / "data", extra_env={
        "AIRLOOP_SOURCE_URL": loaded_source, "AIRLOOP_PROMOTION_APPROVAL": "approve", "AIRLOOP_APPROVAL_TIMEOUT_HOURS": "2"})  # fmt: skip
    try:
        stack.start(wait_for=["train_model"], timeout=START_TIMEOUT_S)
        result = subprocess.run([sys.executable, "-c", PREPARE.format(first=FIRST, last=LAST)], env=stack.env,
                                capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        stack.unpause("train_model")
        yield stack
    finally:
        stack.stop(artifacts=SHOTS / "approval-logs")


@pytest.fixture(scope="module")
def registry(stack):
    from airloop.registry import ModelRegistry

    return ModelRegistry(f"sqlite:///{stack.data_dir / 'registry.db'}")


def wait_until_the_asking_process_exited(stack, ti_id: str, deadline: float) -> None:
    """Answer only once the task process that asked has exited and the scheduler has seen it.

    Airflow 3.3 race (seen in CI): the task is ``awaiting_input`` a few seconds before its process
    exits; an answer in that gap re-queues the task, the late "finished" event of the asking
    process then finds it queued and the scheduler marks the attempt for retry, which asks again.
    A person does not answer within seconds; this test would, so it waits like one.
    """
    log = stack.home / "scheduler.log"
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if any("final_state=awaiting_input" in line and ti_id in line for line in text.splitlines()):
            time.sleep(3)  # the scheduler's next loops take the executor event
            return
        time.sleep(1)
    raise AssertionError(f"the process of task instance {ti_id} never exited awaiting input (see {log})")


def wait_for_approval_request(stack, run_id: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        tis = stack.task_instances("train_model", run_id)
        states = {ti["task_id"]: ti["state"] for ti in tis}
        if states.get("approve_promotion") == "awaiting_input":
            ti_id = next(ti["id"] for ti in tis if ti["task_id"] == "approve_promotion")
            wait_until_the_asking_process_exited(stack, ti_id, deadline)
            return
        if any(s in ("failed", "upstream_failed") for s in states.values()):
            break
        time.sleep(3)
    raise AssertionError(f"approve_promotion never waited for input: {states}")


def login(page, base_url: str) -> None:
    page.goto(base_url + "/", wait_until="domcontentloaded")
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=120_000)
    page.locator("input[name='username']").fill(ADMIN_USER)
    page.locator("input[name='password']").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)


def answer_in_ui(page, stack, run_id: str, option: str, reason: str, shot: str) -> str:
    """Open the task's required action page, read what it shows, give a reason, click ``option``."""
    page.goto(f"{stack.base_url}/dags/train_model/runs/{run_id}/tasks/approve_promotion/required_actions")
    page.get_by_role("button", name=option).first.wait_for(timeout=60_000)
    shown = page.locator("body").inner_text()
    field = page.get_by_label("Reason")
    (field if field.count() else page.get_by_role("textbox").last).first.fill(reason)
    page.screenshot(path=str(SHOTS / f"approval-{shot}-request.png"), full_page=True)
    page.get_by_role("button", name=option).first.click()
    page.get_by_text(re.compile("response successful|Response received", re.I)).first.wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / f"approval-{shot}-answered.png"), full_page=True)
    return shown


def finish(stack, run_id: str):
    (done,) = stack.wait_for_runs("train_model", 1, timeout=600, where=lambda r: r.run_id == run_id)
    return done, {ti["task_id"]: ti["state"] for ti in stack.task_instances("train_model", run_id)}


def test_a_person_approves_one_promotion_and_rejects_another(stack, registry, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    window = {"window_start": FIRST, "window_end": LAST}
    # Shared 2-core machines under load: the UI's first load can take longer than Playwright's 30 s.
    page.set_default_navigation_timeout(180_000)
    page.set_default_timeout(120_000)
    login(page, stack.base_url)

    first = stack.trigger("train_model", {**window, "reason": "e2e: first model"})
    wait_for_approval_request(stack, first.run_id)
    assert registry.champion(MODEL_NAME) is None and registry.get(MODEL_NAME, 1).status == "candidate"
    shown = answer_in_ui(page, stack, first.run_id, "Approve", "holdout numbers look right", "approve")
    assert f"Promote {MODEL_NAME} v1 over baseline?" in shown and "Model card of" in shown and "EWR" in shown
    done, states = finish(stack, first.run_id)
    assert done.state == "success" and states["promote_or_keep"] == "success", stack.explain("train_model", done)
    assert registry.champion(MODEL_NAME).version == 1
    entry = registry.history(MODEL_NAME)[-1]
    assert entry.action == "promote" and entry.actor.startswith(f"{ADMIN_USER} via train_model/")
    assert "approved by" in entry.reason and "holdout numbers look right" in entry.reason

    second = stack.trigger("train_model", {**window, "num_boost_round": 100, "reason": "e2e: more rounds"})
    wait_for_approval_request(stack, second.run_id)
    shown = answer_in_ui(page, stack, second.run_id, "Reject", "wait for the April data", "reject")
    assert f"Promote {MODEL_NAME} v2 over champion v1?" in shown
    done, states = finish(stack, second.run_id)
    assert done.state == "success" and states["promote_or_keep"] == "skipped", stack.explain("train_model", done)
    assert registry.champion(MODEL_NAME).version == 1
    rejected = registry.get(MODEL_NAME, 2)
    assert rejected.status == "rejected" and "wait for the April data" in rejected.status_reason
    entry = registry.history(MODEL_NAME)[-1]
    assert (entry.action, entry.candidate_version) == ("refuse", 2)
    assert entry.actor.startswith(f"{ADMIN_USER} via train_model/") and "rejected by" in entry.reason

    # The model card of v2 says what happened, on the Model versions page's link.
    page.goto(f"{stack.base_url}/airloop/models/{MODEL_NAME}/versions/2/card")
    card = page.locator("main").inner_text()
    assert "wait for the April data" in card and "Calibration (holdout)" in card
    page.screenshot(path=str(SHOTS / "approval-card-v2.png"), full_page=True)
