"""boto3 clients with timeouts and retries that fit the caller's budget.

Plain clients: the standard AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) variables point
them at an emulator without any code knowing about it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# The webhook must answer GitLab within 10 s: short timeouts and one retry per call.
REQUEST_PATH = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})
# Task events run asynchronously with their own retries and a 30 s timeout: more patience.
BACKGROUND = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 4})


@cache
def client(service: str, config: Config = BACKGROUND) -> Any:
    return boto3.client(service, config=config)
