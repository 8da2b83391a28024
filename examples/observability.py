"""Spans and trace-correlated logs for a supervised tree, in a few lines.

Spans go to the console (swap ConsoleSpanExporter for OTLPSpanExporter to send
them to a collector); log lines carry the trace id of the child they come from.

python examples/observability.py --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from procman import Control, Next, ProcessManager, RuntimeContext, runnable
from procman.builtin import RestartBackoff, RestartSupervisor
from procman.observe import LoggingObserver, OtelTracingObserver, TraceContextFilter

log = logging.getLogger("app")
tracer = trace.get_tracer("app")


async def poller(ctx: RuntimeContext) -> None:
    polls = 0
    while True:
        match await ctx.tick(asyncio.sleep(0.2)):
            case Next():
                polls += 1
                with tracer.start_as_current_span("poll"):  # nests under procman.child.run
                    log.info("poll %d", polls)
                if polls == 3:
                    raise ConnectionError("upstream went away")
            case Control():
                return


async def main(duration: float) -> None:
    # 1. The application configures the SDK (procman itself only uses the API).
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    # 2. Logs with the current trace/span id (a child's records: its run span).
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s trace=%(otelTraceID)s %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # 3. Observers: tracing first, then logs.
    root = ProcessManager("app", observers=[OtelTracingObserver(provider), LoggingObserver()])
    root.insert(
        RestartSupervisor(runnable(poller, name="poller"), RestartBackoff(initial=0.2, max=1.0))
    )
    task = asyncio.create_task(root.process_start())
    await asyncio.sleep(duration)
    await root.process_handle().shutdown()
    await task
    provider.shutdown()  # flush the spans still in the batch
    print("observability example stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().duration))
