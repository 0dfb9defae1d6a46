"""CloudWatch Logs: a crashed container's last lines, with one GetLogEvents call."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from review_apps.lifecycle.crash_log import LINES


class Logs:
    def __init__(self, client: Any) -> None:
        self._client = client

    def last_messages(self, group: str, stream: str) -> list[str]:
        """The stream's last LINES events, oldest first; none if the group or stream does not exist."""
        try:
            answer = self._client.get_log_events(
                logGroupName=group, logStreamName=stream, limit=LINES, startFromHead=False
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        return [str(event.get("message", "")) for event in answer.get("events", [])]
