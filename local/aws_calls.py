"""Counting the AWS calls the handlers make, for the benchmark and for tests."""

from __future__ import annotations

from collections import Counter

import boto3


class AwsCallCounter:
    """Counts AWS operations made by clients created after `start` (the handlers' clients:
    they are created on first use, after a cold start)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._session = boto3._get_default_session()

    def _count(self, model, **_: object) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def start(self) -> None:
        self._session.events.register("before-call", self._count)

    def stop(self) -> None:
        self._session.events.unregister("before-call", self._count)

    def __enter__(self) -> AwsCallCounter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
