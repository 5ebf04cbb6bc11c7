"""Requests queued behind a busy scorer are done together, each still getting its own answer."""

from __future__ import annotations

import asyncio
import copy
import threading
from datetime import date

import httpx
import pytest

from service import routes
from service.app import create_app
from service.coalescing import Coalescer

from .conftest import API_KEY, make_loader
from .factories import R_CHOP, make_member, relapsed_dlbcl_member


class Recorder:
    """A process step that answers each item with ``item * 10``, raises for ``"boom"`` items,
    and can be held at its first call until the test lets it go."""

    def __init__(self, hold_first: bool = False):
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items, deliver) -> None:
        self.batches.append(list(items))
        self.entered.set()
        self.release.wait(10)
        if "boom" in items:
            raise ValueError("boom")
        for i, item in enumerate(items):
            deliver(i, item * 10)


async def submit_behind_a_busy_scorer(coalescer: Coalescer, process: Recorder, first, others) -> list:
    """Submit ``first``, wait until it is being processed, queue ``others``, then let it all run."""
    head = asyncio.ensure_future(coalescer.submit(first))
    while not process.entered.is_set():
        await asyncio.sleep(0.005)
    rest = [asyncio.ensure_future(coalescer.submit(item)) for item in others]
    while coalescer.waiting < len(others):
        await asyncio.sleep(0.005)
    process.release.set()
    return await asyncio.gather(head, *rest, return_exceptions=True)


def test_items_waiting_behind_a_busy_scorer_are_processed_as_one_batch():
    """The first item runs alone at once; the four that queued meanwhile are one batch, each answered with its own result."""
    process = Recorder(hold_first=True)
    coalescer = Coalescer(process, max_items=32)
    outcomes = asyncio.run(submit_behind_a_busy_scorer(coalescer, process, 1, [2, 3, 4, 5]))
    assert outcomes == [10, 20, 30, 40, 50]
    assert process.batches == [[1], [2, 3, 4, 5]]


def test_batches_are_capped_at_max_items():
    """No batch holds more than max_items; queued items keep their order across batches."""
    process = Recorder(hold_first=True)
    coalescer = Coalescer(process, max_items=2)
    outcomes = asyncio.run(submit_behind_a_busy_scorer(coalescer, process, 1, [2, 3, 4, 5, 6]))
    assert outcomes == [10, 20, 30, 40, 50, 60]
    assert process.batches == [[1], [2, 3], [4, 5], [6]]


def test_a_failing_batch_is_redone_item_by_item_so_only_the_bad_item_fails():
    """One item that makes the batch raise gets that error; the others in its batch still get their results."""
    process = Recorder(hold_first=True)
    coalescer = Coalescer(process, max_items=32)
    outcomes = asyncio.run(submit_behind_a_busy_scorer(coalescer, process, 1, [2, "boom", 4]))
    assert outcomes[:2] == [10, 20] and outcomes[3] == 40
    assert isinstance(outcomes[2], ValueError)
    assert process.batches == [[1], [2, "boom", 4], [2], ["boom"], [4]]


def test_items_answered_before_a_failure_are_not_redone():
    """What the step delivered before raising stands; only the items it left unanswered are redone alone."""

    class AnswersFirstThenFails(Recorder):
        def __call__(self, items, deliver) -> None:
            self.batches.append(list(items))
            self.entered.set()
            self.release.wait(10)
            deliver(0, f"{items[0]} answered")
            if len(items) > 1:
                raise RuntimeError("late failure")

    process = AnswersFirstThenFails(hold_first=True)
    coalescer = Coalescer(process, max_items=8)
    outcomes = asyncio.run(submit_behind_a_busy_scorer(coalescer, process, "a", ["b", "c", "d"]))
    assert outcomes == ["a answered", "b answered", "c answered", "d answered"]
    assert process.batches == [["a"], ["b", "c", "d"], ["c"], ["d"]]


def test_an_item_the_step_forgets_to_answer_gets_an_error_not_a_hang():
    """A process step that returns without delivering an item makes that request fail, not wait forever."""

    async def run():
        coalescer = Coalescer(lambda items, deliver: None, max_items=4)
        return await asyncio.wait_for(coalescer.submit("x"), timeout=5)

    with pytest.raises(RuntimeError, match="without answering"):
        asyncio.run(run())


def test_a_cancelled_request_does_not_stop_the_others():
    """A client that goes away while queued does not break the batch it was in."""
    process = Recorder(hold_first=True)
    coalescer = Coalescer(process, max_items=32)

    async def run():
        head = asyncio.ensure_future(coalescer.submit(1))
        while not process.entered.is_set():
            await asyncio.sleep(0.005)
        gone = asyncio.ensure_future(coalescer.submit(2))
        kept = asyncio.ensure_future(coalescer.submit(3))
        while coalescer.waiting < 2:
            await asyncio.sleep(0.005)
        gone.cancel()
        process.release.set()
        return await head, await kept

    assert asyncio.run(run()) == (10, 30)


def test_settings_below_one_are_refused():
    """A coalescer needs at least one item per batch and one thread."""
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_items=0)


# --- through the app, with the real model ------------------------------------------------------


@pytest.fixture
def app(settings, model_dir):
    app = create_app(settings, loader=make_loader(model_dir))
    app.state.service.slot.reload()
    return app


async def post_all(app, bodies: list[dict], *, hold_gate: bool) -> list[httpx.Response]:
    """POST every body to /v1/score: one after another, or (``hold_gate``) all at once with the
    scoring gate held until every request has reached the coalescer, so they queue together."""
    coalescer = app.state.service.coalescer
    gate = app.state.service.scoring_gate
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        if not hold_gate:
            return [await client.post("/v1/score", json=body, headers=headers) for body in bodies]
        submitted = []
        submit = coalescer.submit

        async def counted(item):
            submitted.append(item)
            return await submit(item)

        coalescer.submit = counted
        gate.acquire()
        try:
            tasks = [asyncio.ensure_future(client.post("/v1/score", json=body, headers=headers)) for body in bodies]
            for _ in range(2000):
                if len(submitted) == len(bodies):
                    break
                await asyncio.sleep(0.005)
        finally:
            gate.release()
            del coalescer.submit
        return list(await asyncio.gather(*tasks))


def spy_on_scoring(monkeypatch) -> list[int]:
    """How many members each pipeline call of /v1/score scored."""
    calls: list[int] = []
    score_histories = routes.score.score_histories

    def spy(*args, **kwargs):
        calls.append(len(kwargs["records"]))
        return score_histories(*args, **kwargs)

    monkeypatch.setattr(routes.score, "score_histories", spy)
    return calls


def test_requests_scored_together_get_what_each_gets_alone(app, monkeypatch):
    """Concurrent members (one named twice with different dates, one empty, one body with an unknown
    field) get exactly the answers they get one at a time, and the valid ones that queued are
    scored in one pipeline call."""
    twice = relapsed_dlbcl_member("same-member")
    bodies = [
        make_member("first", lines=((date(2024, 6, 3), R_CHOP),), as_of=date(2024, 10, 1)),
        twice,
        {"person_id": "empty", "demographics": {"birth_date": "1970-01-01"}, "as_of": "2024-10-01"},
        {**copy.deepcopy(twice), "as_of": "2024-06-01"},
        {**relapsed_dlbcl_member("unknown-field"), "favourite_colour": "blue"},
        make_member("second", lines=((date(2024, 2, 5), R_CHOP),), as_of=date(2024, 12, 1)),
    ]
    alone = asyncio.run(post_all(app, bodies, hold_gate=False))
    calls = spy_on_scoring(monkeypatch)
    together = asyncio.run(post_all(app, bodies, hold_gate=True))

    assert [r.status_code for r in alone] == [200, 200, 200, 200, 422, 200]
    assert [r.status_code for r in together] == [r.status_code for r in alone]
    for one, other in zip(alone, together):
        assert one.json() == other.json()
    # five valid members in at most two pipeline calls (the first drain may take one request or
    # several, depending on how many had arrived), each member scored once
    assert sum(calls) == 5 and len(calls) <= 2
    metrics = app.state.service.metrics.render().decode()
    assert "cartscout_coalesced_members_sum 10.0" in metrics  # five members alone, five together
    assert f"cartscout_coalesced_members_count {5 + len(calls)}.0" in metrics
    same = [together[1].json(), together[3].json()]
    assert [r["person_id"] for r in same] == ["same-member", "same-member"]
    assert [r["as_of"] for r in same] == ["2024-11-01", "2024-06-01"]
    assert same[0]["status"] == "eligible_now" and same[0]["lines_of_therapy"] != same[1]["lines_of_therapy"]


def test_a_malformed_member_among_queued_requests_fails_alone(app, monkeypatch):
    """A malformed code fails mapping for the batch it queued in; every request is then redone on its
    own, so the bad one gets its own 422 (fields named as if sent alone) and the others their results."""
    malformed = relapsed_dlbcl_member("bad-code")
    malformed["medical_claims"][1]["diagnosis_codes"] = ["C83.38", "12345"]
    bodies = [relapsed_dlbcl_member("first"), relapsed_dlbcl_member("good"), malformed, make_member("also-good", as_of=date(2024, 10, 1))]
    alone = asyncio.run(post_all(app, bodies, hold_gate=False))
    calls = spy_on_scoring(monkeypatch)
    together = asyncio.run(post_all(app, bodies, hold_gate=True))

    assert [r.status_code for r in together] == [r.status_code for r in alone] == [200, 200, 422, 200]
    for one, other in zip(alone, together):
        assert one.json() == other.json()
    assert [e["field"] for e in together[2].json()["errors"]] == ["medical_claims[1].diagnosis_codes[1]"]
    # the three valid members are each scored exactly once; the malformed one never is
    assert sum(calls) == 3


def test_one_request_at_a_time_is_never_batched(app, monkeypatch):
    """Without overlap every request is its own pipeline call (nothing waits for company)."""
    calls = spy_on_scoring(monkeypatch)
    responses = asyncio.run(post_all(app, [relapsed_dlbcl_member(f"m{i}") for i in range(3)], hold_gate=False))
    assert [r.status_code for r in responses] == [200, 200, 200]
    # the three valid members are each scored exactly once; the malformed one never is
    assert sum(calls) == 3
