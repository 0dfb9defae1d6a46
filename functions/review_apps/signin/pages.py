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


def refused(project_path: str, mr_iid: int, text: str, username: str, cookies: list[str]) -> Response:
    return page(
        403,
        "You can't open this review app",
        f"This is the review app of {project_path}!{mr_iid}. Only members of {project_path} can open it.",
        text,
        f"You are signed in to GitLab as @{username}.",
        cookies=cookies,
    )


def bad_request(why: str) -> Response:
    return page(
        400,
        "This sign-in request is not valid",
        why,
        "Open the review app's address (from its merge request) again to sign in.",
    )


def gitlab_unavailable() -> Response:
    return page(
        502,
        "GitLab did not answer the sign-in",
        "Signing in to a review app asks GitLab who you are, and GitLab did not answer in time.",
        "Open the review app's address again in a minute.",
    )
