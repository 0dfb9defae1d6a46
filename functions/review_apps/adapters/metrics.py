"""CloudWatch: how many requests each app's target group had, for every app in one GetMetricData
call (it takes up to 500 queries; an install holds at most 100 running apps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from review_apps.lifecycle.sleep import METRIC_NAMESPACE, METRIC_PERIOD, MetricQuery

MAX_QUERIES = 500


class Metrics:
    def __init__(self, client: Any, load_balancer: str) -> None:
        self._client = client
        self._load_balancer = load_balancer  # `app/<name>/<id>`: RequestCount has both dimensions

    def request_counts(self, queries: list[MetricQuery], start: int, end: int) -> dict[str, list[tuple[int, float]]]:
        """Query id → (epoch, requests) per minute with requests, from `start` to `end`."""
        if not queries:
            return {}
        if len(queries) > MAX_QUERIES:
            raise ValueError(f"{len(queries)} queries: GetMetricData takes at most {MAX_QUERIES}")
        request: dict[str, Any] = {
            "MetricDataQueries": [
                {
                    "Id": q.query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": METRIC_NAMESPACE,
                            "MetricName": "RequestCount",
                            "Dimensions": [
                                {"Name": "TargetGroup", "Value": q.target_group},
                                {"Name": "LoadBalancer", "Value": self._load_balancer},
                            ],
                        },
                        "Period": METRIC_PERIOD,
                        "Stat": "Sum",
                    },
                    "ReturnData": True,
                }
                for q in queries
            ],
            "StartTime": datetime.fromtimestamp(start, tz=UTC),
            "EndTime": datetime.fromtimestamp(end, tz=UTC),
        }
        points: dict[str, list[tuple[int, float]]] = {q.query_id: [] for q in queries}
        while True:  # more pages only for very many points; one call in practice
            answer = self._client.get_metric_data(**request)
            for result in answer.get("MetricDataResults", []):
                points.setdefault(result["Id"], []).extend(
                    (int(at.timestamp()), float(value))
                    for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                )
            token = answer.get("NextToken")
            if not token:
                return points
            request["NextToken"] = token
