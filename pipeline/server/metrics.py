"""``/healthz`` and ``/metrics`` bodies: queue depth, workers and job times for operators and autoscalers.

Why both: ``/healthz`` is the JSON a load balancer or a Kubernetes probe reads (503 when the
store cannot be reached, so a replica cut off from the database leaves the rotation);
``/metrics`` is the Prometheus text exposition format (version 0.0.4), which a Prometheus
server scrapes and a Kubernetes HPA reads through an adapter to scale workers on
``pipeline_jobs_queued``. The figures come from the store, so they are the whole fleet's.

Why only one member exports them: Prometheus scrapes every pod, and an HPA fed by the usual
``sum(...)`` over pods would see the queue multiplied by the number of pods and scale away to
its cap. So the fleet-wide gauges (queue, workers, job times, webhook outbox) come only from the
member holding the exporter lease in the database (``pipeline_fleet_exporter 1``); the others
export their own counters and ``pipeline_fleet_exporter 0``. Summed, averaged-by-exporter or
maxed over pods, the queue is counted once. ``/healthz`` still reports the fleet from any member.

Why a scrape during a database outage still answers 200: a failed scrape reads as "this pod is
down" (``up == 0`` on every member at once) while the processes are alive and ``/livez`` says so,
and it loses their counters for the outage. So the scrape keeps this process's counters and says
what is wrong in ``pipeline_store_up 0``; the fleet-wide gauges, which only the store knows, are
left out (an HPA holds while its metric is absent).
"""

from __future__ import annotations

from typing import Any

from .counters import Counters
from .store import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

GAUGES = (
    ("jobs_queued", "queued", "Jobs waiting for a worker (status pending)."),
    ("jobs_running", "running", "Jobs a worker is reading now (status processing)."),
    ("jobs_finished_last_minute", "done_last_minute", "Jobs finished (done or error) in the last 60 seconds."),
    ("jobs_failed_last_minute", "failed_last_minute", "Jobs that ended in error in the last 60 seconds."),
    ("workers", "workers", "Worker processes that reported in recently."),
    ("jobs_kept", "jobs_kept", "Job records held until their results expire."),
    ("webhooks_pending", "webhooks_pending", "Webhook events not yet answered 2xx (retrying)."),
    ("webhooks_failed", "webhooks_failed", "Webhook events given up after the whole retry schedule."),
)
COUNTERS = (("submits", "Submit requests this process received."),
            ("jobs_created", "Jobs this process created."),
            ("jobs_done", "Jobs this process finished successfully."),
            ("jobs_failed", "Jobs this process finished in error."),
            ("rate_limited", "429 answers this process served."),
            ("webhooks_delivered", "Webhook attempts answered 2xx by this process."))


def health_body(stats: Stats, store_kind: str, role: str, worker_id: str) -> dict[str, Any]:
    return {"status": "ok", "store": store_kind, "role": role, "id": worker_id, **stats.as_dict()}


def render(stats: Stats | None, counters: Counters, role: str, fleet: bool = True) -> str:
    """The Prometheus text for one scrape; the fleet-wide gauges only when ``fleet`` (the exporter)
    and the store answered (``stats`` is None during an outage)."""
    fleet = fleet and stats is not None
    lines: list[str] = ["# HELP pipeline_store_up 1 if this member reached its store for this scrape.",
                        "# TYPE pipeline_store_up gauge", f"pipeline_store_up {int(stats is not None)}",
                        "# HELP pipeline_fleet_exporter 1 if this member exports the fleet-wide gauges.",
                        "# TYPE pipeline_fleet_exporter gauge", f"pipeline_fleet_exporter {int(fleet)}"]
    if fleet:
        for name, attr, help_text in GAUGES:
            lines += [f"# HELP pipeline_{name} {help_text}", f"# TYPE pipeline_{name} gauge",
                      f"pipeline_{name} {getattr(stats, attr)}"]
        lines += ["# HELP pipeline_job_seconds Job time (processing start to finish) over the last 5 minutes.",
                  "# TYPE pipeline_job_seconds gauge"]
        for q, attr in (("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms")):
            lines.append(f'pipeline_job_seconds{{quantile="{q}"}} {getattr(stats, attr) / 1000:.6f}')
    for name, help_text in COUNTERS:
        lines += [f"# HELP pipeline_{name}_total {help_text}", f"# TYPE pipeline_{name}_total counter",
                  f'pipeline_{name}_total{{role="{role}"}} {getattr(counters, name)}']
    return "\n".join(lines) + "\n"


__all__ = ["CONTENT_TYPE", "health_body", "render"]
