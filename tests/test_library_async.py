"""The batch job from async code: `await arun_job(...)` leaves the event loop free, and
`run_job` works inside a running loop (a notebook cell, an async service), with a real LLM
call path (the local test server over HTTP), whose own event loop is what used to clash."""

from __future__ import annotations

import asyncio
from typing import Any

from agent import JobLimits, JobReport, LabelingSession, LLMConfig, ProjectConfig, arun_job, run_job
from agent.llm.test_server import LLMTestServer


def llm_session(server: LLMTestServer) -> LabelingSession:
    texts = [f"{word} message number {i}" for i in range(30) for word in ("card", "pin")][:30]
    llm = LLMConfig(model="openai/test-model", api_base=server.base_url, few_shot_k=0,
                    max_retries=0)
    config = ProjectConfig(embedding_model="hashing", llm=llm)
    return LabelingSession.from_texts(texts, ["card", "pin"], config=config)


def test_run_job_inside_a_running_event_loop(llm_server: LLMTestServer) -> None:
    session = llm_session(llm_server)

    async def notebook_cell() -> JobReport:
        return run_job(session, JobLimits(rounds=1, batch_size=8))

    report = asyncio.run(notebook_cell())
    assert report.llm_calls > 0 and llm_server.stats.requests > 0


def test_arun_job_leaves_the_event_loop_free(llm_server: LLMTestServer) -> None:
    llm_server.knobs.latency_s = 0.05  # the job takes a while: the loop must tick meanwhile
    session = llm_session(llm_server)
    ticks_during_job: list[int] = []

    async def service() -> JobReport:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        def on_event(kind: str, _data: dict[str, Any]) -> None:  # runs in the job's thread
            ticks_during_job.append(ticks)

        task = asyncio.create_task(ticker())
        try:
            return await arun_job(session, JobLimits(rounds=2, batch_size=8), on_event=on_event)
        finally:
            task.cancel()

    report = asyncio.run(service())
    assert report.llm_calls > 0
    assert ticks_during_job and ticks_during_job[-1] > 0, "arun_job blocked the event loop"
