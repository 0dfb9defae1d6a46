"""What a person sees from the sign-in provider when it does not send them on: a refusal that
says why and how to get access, or a page that says what went wrong with the sign-in itself.
Every value shown is HTML-escaped; nothing from the request is echoed."""

from __future__ import annotations

from html import escape

from review_apps.signin.provider import Response

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:15vh auto;padding:0 1em;color:#222}}</style>
</head><body><h1>{title}</h1>{paragraphs}</body></html>
"""


def page(status: int, title: str, *paragraphs: str, cookies: list[str] | None = None) -> Response:
    body = _PAGE.format(title=escape(title), paragraphs="".join(f"<p>{escape(text)}</p>" for text in paragraphs))
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    return Response(status, body, headers, list(cookies or []))


def refused(text: str, username: str, cookies: list[str]) -> Response:
    """A visitor GitLab says may not open the app: the page names neither the project nor the MR
    (a stranger who knows a host learns nothing private from it), only what access is needed."""
    return page(
        403,
        "You can't open this review app",
        text,
        f"You are signed in to GitLab as @{username}.",
        cookies=cookies,
    )


def code_refused() -> Response:
    return page(
        400,
        "This sign-in was not accepted",
        "GitLab did not accept the sign-in code: it is not valid, was already used, or has expired.",
        "Open the review app's address (from its merge request) again to sign in.",
    )


RETRY_SECONDS = 30


def try_again_shortly() -> Response:
    answer = page(
        503,
        "Try again shortly",
        "Signing in to a review app asks GitLab who you are and whether you may see the app, and GitLab is "
        "busy or did not answer in time.",
        f"Open the review app's address again in {RETRY_SECONDS} seconds.",
    )
    answer.headers["Retry-After"] = str(RETRY_SECONDS)
    return answer


def too_many() -> Response:
    answer = page(
        429,
        "Too many sign-in requests",
        "This browser asked to open review apps more than ten times in a minute.",
        "Wait a minute, then open the review app's address again.",
    )
    answer.headers["Retry-After"] = "60"
    return answer


def bad_request(why: str) -> Response:
    return page(
        400,
        "This sign-in request is not valid",
        why,
        "Open the review app's address (from its merge request) again to sign in.",
    )
