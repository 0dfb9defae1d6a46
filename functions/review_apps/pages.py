"""What a visitor to a sleeping app's address sees while it wakes: small HTML pages, answered by
WakeFunction as the load balancer's Lambda target. Nothing from the request is echoed."""

from __future__ import annotations

from typing import Any

from review_apps.durations import format_duration
from review_apps.lifecycle.queue import place_words
from review_apps.lifecycle.sleep import WakeAnswer

RETRY_SECONDS = 10

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:15vh auto;padding:0 1em;color:#222}}</style>
</head><body><h1>{title}</h1><p>{text}</p></body></html>
"""


def _usually(seconds: int) -> str:
    if not seconds:
        return "That usually takes about a minute."
    return f"Last time it took {format_duration(seconds)}."


def render(answer: WakeAnswer) -> dict[str, Any]:
    """The ALB Lambda target's response for `answer`."""
    refresh = f'\n<meta http-equiv="refresh" content="{RETRY_SECONDS}">'
    mr = f"!{answer.mr_iid}"
    if answer.kind == "waking":
        title, text = (
            f"Waking up the review app for {mr}",
            "It was asleep, to cost nothing while nobody looked. It is starting now. "
            f"{_usually(answer.start_seconds)} This page reloads every {RETRY_SECONDS} seconds "
            "and shows the app once it answers.",
        )
        return _response(503, title, text, refresh)
    if answer.kind == "starting":
        title, text = (
            f"The review app for {mr} is starting",
            f"{_usually(answer.start_seconds)} This page reloads every {RETRY_SECONDS} seconds "
            "and shows the app once the load balancer finds it healthy.",
        )
        return _response(503, title, text, refresh)
    if answer.kind == "queued":
        title, text = (
            f"The review app for {mr} is waiting for a free slot",
            f"It is {place_words(answer.place)} in the queue: the install runs a limited number of review apps "
            f"at once. It starts by itself as soon as a slot frees. This page reloads every {RETRY_SECONDS} seconds.",
        )
        return _response(503, title, text, refresh)
    if answer.kind == "awake":
        title, text = f"The review app for {mr} is up", "It is ready: this page reloads into it."
        return _response(503, title, text, refresh.replace(str(RETRY_SECONDS), "2"))
    if answer.kind == "retry":
        title, text = (
            "This review app could not be woken just now",
            f"Something it needs did not answer in time. This page tries again every {RETRY_SECONDS} seconds.",
        )
        return _response(503, title, text, refresh)
    if answer.kind == "failed":
        title, text = (
            f"The review app for {mr} could not start",
            "The reason is on the merge request, with what to do about it.",
        )
        return _response(503, title, text, "", retry=False)
    return _response(404, "No review app here", "No review app is running at this address.", "", retry=False)


def _response(status: int, title: str, text: str, refresh: str, retry: bool = True) -> dict[str, Any]:
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    if retry:
        headers["Retry-After"] = str(RETRY_SECONDS)
    return {
        "statusCode": status,
        "statusDescription": f"{status} {'Not Found' if status == 404 else 'Service Unavailable'}",
        "headers": headers,
        "body": _PAGE.format(title=title, text=text, refresh=refresh),
        "isBase64Encoded": False,
    }
