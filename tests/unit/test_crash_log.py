"""Where an app's logs are, and what of a crashed app's log the MR shows: pure rules and the view."""

from __future__ import annotations

import dataclasses
import unicodedata

from review_apps.lifecycle import crash_log
from review_apps.lifecycle.crash_log import LogStream
from review_apps.messages import crash_block, logs_line, render_note
from review_apps.model.record import Record
from review_apps.model.values import Status, StopReason

TASK = "arn:aws:ecs:eu-west-1:111122223333:task/review-apps/0123abcd"
KWARGS = {
    "containerDefinitions": [
        {
            "name": "web",
            "environment": [
                {"name": "DB_PASSWORD", "value": "hunter22"},
                {"name": "API_KEY", "value": "k-123"},
                {"name": "MODE", "value": "debug"},
                {"name": "SHORT_TOKEN", "value": "ab"},
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/review-apps/14/shop",
                    "awslogs-stream-prefix": "review",
                    "awslogs-region": "eu-west-1",
                },
            },
        },
        {"name": "sidecar", "logConfiguration": {"logDriver": "splunk", "options": {}}},
        {
            "name": "evil",
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/review-apps/14/x",
                    "awslogs-stream-prefix": "p",
                    "awslogs-region": "evil.com/#",
                },
            },
        },
    ]
}


def test_streams_are_the_awslogs_containers_and_a_bad_region_is_the_installs():
    found = crash_log.streams(KWARGS, "us-east-1")
    assert [s.container for s in found] == ["web", "evil"]
    assert found[0] == LogStream("web", "/review-apps/14/shop", "review", "eu-west-1")
    assert found[1].region == "us-east-1"  # never a host of the project's choosing
    assert found[0].stream(TASK) == "review/web/0123abcd"
    assert LogStream.decode(found[0].encode()) == found[0] and LogStream.decode("a\tb") is None


def test_the_console_link_escapes_group_and_stream_as_the_console_wants():
    url = crash_log.console_url(LogStream("web", "/review-apps/14/shop", "re view)", "eu-west-1"), TASK)
    assert url.startswith("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:")
    assert "log-group/$252Freview-apps$252F14$252Fshop/log-events/re$2520view$2529$252Fweb$252F0123abcd" in url
    assert " " not in url and ")" not in url


def test_last_lines_are_bounded_masked_and_without_terminal_escapes():
    messages = [f"line {n}" for n in range(100)] + [
        "password=hunter22 key=k-123 mode=debug ab",
        "\x1b[31mred\x1b[0m\x07",
    ]
    text = crash_log.last_lines(messages, crash_log.secret_values(KWARGS, "web"))
    lines = text.splitlines()
    assert len(lines) == crash_log.LINES and lines[0] == "line 72"
    assert lines[-2] == "password=**** key=**** mode=debug ab" and lines[-1] == "red"
    huge = crash_log.last_lines(["x" * 3000, "y" * 3000], [])
    assert len(huge.encode()) <= crash_log.BYTES and huge.startswith("y")


def test_only_a_private_projects_mr_shows_lines_unless_the_spec_opts_in():
    assert crash_log.may_show("private", False)
    assert not crash_log.may_show("public", False) and not crash_log.may_show("internal", False)
    assert crash_log.may_show("public", True)


CRASHED = Record(
    project_id=14,
    mr_iid=3,
    status=Status.STOPPED,
    stop_reason=StopReason.CRASHED,
    stop_detail="container `web` exited with code 1",
    container="web",
    task_arn=TASK,
    commit_sha="a" * 40,
    log_streams=[LogStream("web", "/review-apps/14/shop", "review", "eu-west-1").encode()],
)


def test_the_crash_block_is_inert_text_in_a_fence_longer_than_any_backticks_inside():
    hostile = "@alice see [here](https://evil.example) <script>\n```\n</details> **bold** #1 !2 ````"
    block = crash_block(dataclasses.replace(CRASHED, crash_log=hostile))
    assert block.startswith("<details><summary>The last 3 lines of web&#x27;s log</summary>\n\nAs the app printed them")
    assert "\n\n`````text\n" + hostile in block
    assert block.endswith("\n`````\n\n</details>") and hostile in block


def test_a_public_project_gets_the_link_and_a_word_on_why_no_lines():
    hidden = dataclasses.replace(CRASHED, crash_log_hidden=True)
    assert "add `show_crash_log: true` to the spec" in crash_block(hidden)
    assert logs_line(hidden).startswith("Logs: [`web`](https://eu-west-1.console.aws.amazon.com/")


def test_the_note_of_a_crash_carries_the_link_and_the_lines_and_no_link_without_a_task():
    note = render_note(dataclasses.replace(CRASHED, crash_log="boom\nTraceback"))
    assert "Logs: [`web`](" in note and "<details>" in note and "boom\nTraceback" in note
    assert logs_line(dataclasses.replace(CRASHED, task_arn="")) == ""
    assert crash_block(dataclasses.replace(CRASHED, stop_reason=StopReason.TTL, crash_log="x")) == ""


def definition_with(**variables: str) -> dict:
    return {
        "containerDefinitions": [
            {"name": "web", "environment": [{"name": name, "value": value} for name, value in variables.items()]}
        ]
    }


def test_what_looks_secret_is_masked_by_name_and_inside_urls():
    secrets = crash_log.secret_values(
        definition_with(
            DB_PASS="hunter22",
            AWS_CREDENTIALS="creds-value-1",
            SENTRY_DSN="https://abc123@o1.ingest.sentry.io/2",
            GH_AUTH="auth-value-1",
            SSH_PRIVATE="-----BEGIN-x",
            DB_PWD="pwd-value-1",
            PLAIN="visible-value",
        ),
        "web",
    )
    lines = [
        "connecting with hunter22 and creds-value-1",
        "sentry https://abc123@o1.ingest.sentry.io/2 auth-value-1 -----BEGIN-x pwd-value-1",
        "DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/app visible-value",
        "redis://:only-a-password@cache:6379/0",
    ]
    text = crash_log.last_lines(lines, secrets)
    for secret in ("hunter22", "creds-value-1", "abc123", "auth-value-1", "BEGIN-x", "pwd-value-1", "s3cr3t-pw"):
        assert secret not in text, secret
    assert "only-a-password" not in text and "redis://:****@cache" in text
    assert "postgres://app:****@db.internal:5432/app" in text and "visible-value" in text


def test_invisible_and_bidi_characters_never_reach_the_note_nor_hide_a_secret():
    secrets = crash_log.secret_values(definition_with(API_TOKEN="tok-12345"), "web")
    text = crash_log.last_lines(["leaked tok-\u200b12345 here", "admin \u202egnp.exe\u202c ok \ufeff"], secrets)
    assert "tok-12345" not in text and "leaked **** here" in text
    assert not any(unicodedata.category(c) == "Cf" for c in text)


def test_the_spec_can_turn_the_block_off_in_a_private_project():
    assert crash_log.may_show("private", opted_in=False)
    assert not crash_log.may_show("private", opted_in=False, opted_out=True)
    assert not crash_log.may_show("public", opted_in=False) and crash_log.may_show("public", opted_in=True)
