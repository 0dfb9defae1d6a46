"""An HTTP proxy in front of moto that answers chosen AWS operations with faults.

moto never throttles and never returns RunTask `failures`; real AWS does both. The proxy
forwards every request to moto unchanged, except the next N requests for an operation
(by its X-Amz-Target, e.g. "AmazonEC2ContainerServiceV20141113.RunTask"), which get the
answer the rule gives. Clients reach it through the standard AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

ECS = "AmazonEC2ContainerServiceV20141113"


@dataclass
class Fault:
    target: str  # an X-Amz-Target (JSON protocols), or "METHOD /path-prefix" (REST ones: Scheduler)
    remaining: int
    status: int
    body: dict[str, Any]
    applied: bool = False  # moto carries the request out, and then the answer is lost (a 5xx)
    skip: int = 0  # matching requests to let through before the fault starts
    meanwhile: Any = None  # instead of failing: run this (another writer, say), then pass the request on


def meanwhile(target: str, act: Any, times: int = 1) -> Fault:
    """`act()` runs while the next `times` matching requests are in flight; they go through."""
    return Fault(target, times, 0, {}, meanwhile=act)


def server_error(target: str, times: int, applied: bool = False, skip: int = 0) -> Fault:
    """A 500 for the next `times` requests (`applied`: after moto has carried each out)."""
    return Fault(target, times, 500, {"__type": "InternalServerError", "message": "injected"}, applied, skip)


def throttled(operation: str, times: int) -> Fault:
    return Fault(f"{ECS}.{operation}", times, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})


def no_capacity(times: int) -> Fault:
    failure = {
        "arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/x",
        "reason": "Capacity is unavailable at this time. Please try again later or in a different availability zone",
    }
    return Fault(f"{ECS}.RunTask", times, 200, {"tasks": [], "failures": [failure]})


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._relay("POST")

            def do_GET(self) -> None:
                self._relay("GET")

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._take(self.headers.get("X-Amz-Target", ""), f"{method} {self.path}")
                if fault is not None and fault.meanwhile is not None:
                    fault.meanwhile()
                    fault = None
                if fault is not None and fault.applied:
                    self._forward(method, body)  # carried out; the answer never arrives
                if fault is not None:
                    payload = json.dumps(fault.body).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                answer = self._forward(method, body)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def _forward(self, method: str, body: bytes) -> requests.Response:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                return requests.request(method, proxy.upstream + self.path, data=body, headers=headers, timeout=30)

            def do_PUT(self) -> None:
                self._relay("PUT")

            def do_DELETE(self) -> None:
                self._relay("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _take(self, target: str, request_line: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                matches = fault.target == target if target else request_line.startswith(fault.target)
                if matches and fault.skip > 0:
                    fault.skip -= 1
                    return None
                if matches and fault.remaining > 0:
                    fault.remaining -= 1
                    self.injected[target.rsplit(".", 1)[-1] if target else fault.target] += 1
                    return fault
        return None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
