"""The configurations the harness compares, and which workloads each runs.

A configuration is a runner (a key of a workload's ``RUNNERS`` table) on an
event loop. ``ref`` names the configuration it is judged against besides the
baseline: the hand-wired floor for the fully instrumented procman, the uvloop
baseline for procman under uvloop, the eager baseline for procman with
eager tasks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    description: str
    workloads: str  # letters of the workloads it runs, e.g. "ABC"
    runner: str = ""  # defaults to the name
    loop: str = "asyncio"  # or "uvloop", or "eager" (asyncio with eager_task_factory, 3.12+)
    ref: str | None = None
    ref_workloads: str = "ABC"

    @property
    def runner_key(self) -> str:
        return self.runner or self.name


CONFIGS: tuple[Config, ...] = (
    Config(
        "baseline",
        "bare asyncio: N tasks awaiting one shared Event, set it, asyncio.wait(tasks) "
        "(B: hand-written restart loop; C: one Event per task, set them all; D: hand-written "
        "one_for_all, stop the others one at a time in reverse, start all again; E: a "
        "readiness counter, or await each task's ready future before creating the next)",
        "ABCDE",
    ),
    Config(
        "taskgroup",
        "asyncio.TaskGroup, children await one shared Event; set it and leave the group",
        "A",
    ),
    Config(
        "aiotools-ptg",
        "aiotools.PersistentTaskGroup, each child awaits its own future; shutdown() "
        "cancels (no graceful phase)",
        "A",
    ),
    Config(
        "aiotools-supervisor",
        "aiotools.Supervisor, each child awaits its own future; abort() cancels "
        "(no graceful phase)",
        "A",
    ),
    Config(
        "anyio",
        "anyio task group (asyncio backend), children sleep_forever(); the group's "
        "cancel scope cancels them (no graceful phase)",
        "A",
    ),
    Config(
        "mode-tree",
        "mode-streaming: root Service with N child Services, each with a @Service.task "
        "waiting until stopped; root.stop()",
        "A",
    ),
    Config(
        "mode-futures",
        "mode-streaming: one Service, N add_future() tasks waiting until it stops; stop()",
        "A",
    ),
    Config(
        "procman",
        "ProcessManager(observers=[]) with N IdleProcess children; "
        "process_handle().shutdown() (graceful) (D: strategy ONE_FOR_ALL, zero backoff; "
        "E: children inserted with wait_ready=True, ordered or not)",
        "ABCDE",
    ),
    Config(
        "procman-logging",
        "procman + LoggingObserver (procman logger: NullHandler only, root level WARNING): "
        "the default configuration",
        "ABDE",
    ),
    Config(
        "procman-prometheus",
        "procman + procman_metrics.PrometheusMetrics on a private CollectorRegistry",
        "AB",
    ),
    Config(
        "procman-otel",
        "procman + OtelTracingObserver (SDK TracerProvider, BatchSpanProcessor, dropping exporter)",
        "AB",
    ),
    Config(
        "procman-all",
        "procman + logging + Prometheus + OTel observers together",
        "ABCDE",
        ref="floor",
        ref_workloads="AB",
    ),
    Config(
        "floor",
        "bare tasks hand-wired with the same back-ends: per child one span (current in "
        "its task), one labelled counter increment, one DEBUG log call "
        "(B: plus an ERROR record with the exception per crash)",
        "AB",
    ),
    Config(
        "baseline-gcfreeze",
        "baseline with gc.freeze() once all children run (not timed) and gc.unfreeze() "
        "after the stop",
        "A",
    ),
    Config(
        "procman-logging-gcfreeze",
        "procman-logging (the default configuration) with gc.freeze() once all children "
        "run (not timed) and gc.unfreeze() after the stop",
        "A",
        ref="baseline-gcfreeze",
        ref_workloads="A",
    ),
    Config(
        "baseline-uvloop",
        "baseline on uvloop",
        "ABC",
        runner="baseline",
        loop="uvloop",
    ),
    Config(
        "procman-uvloop",
        "procman (no observer) on uvloop",
        "ABC",
        runner="procman",
        loop="uvloop",
        ref="baseline-uvloop",
    ),
    Config(
        "baseline-eager",
        "baseline with asyncio.eager_task_factory installed on the loop (Python 3.12+)",
        "ABC",
        runner="baseline",
        loop="eager",
    ),
    Config(
        "procman-eager",
        "procman (no observer) with asyncio.eager_task_factory installed on the loop "
        "(Python 3.12+)",
        "ABC",
        runner="procman",
        loop="eager",
        ref="baseline-eager",
    ),
)

BY_NAME: dict[str, Config] = {c.name: c for c in CONFIGS}
