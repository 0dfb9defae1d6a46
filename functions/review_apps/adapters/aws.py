"""boto3 clients with timeouts and retries that fit inside a webhook's 10-second budget.

Plain clients: the standard AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) variables point
them at an emulator without any code knowing about it.
"""

from __future__ import annotations

from functools import lru_cache

import boto3
from botocore.config import Config

_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@lru_cache(maxsize=None)
def client(service: str):
    return boto3.client(service, config=_CONFIG)
