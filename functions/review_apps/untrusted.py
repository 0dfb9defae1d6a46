"""Files and text from a project's Developers: read them bounded, echo them inert.

A spec, compose or ecs-params file is written by whoever can push a branch. Reading one must
cost a bounded amount of time and memory whatever it holds, and anything from it that we
repeat on the merge request must not be able to mention people, add links or break the note.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_FILE_BYTES = 64 * 1024
# What a document may grow to once its aliases are expanded, in nodes plus scalar characters.
# A hand-written file with a few `<<: *defaults` stays far below; a "billion laughs" does not.
MAX_EXPANDED_WEIGHT = 256 * 1024
MAX_DEPTH = 40
ECHO_LIMIT = 100

_INVISIBLE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")


class UnreadableFile(ValueError):
    """The file is refused unparsed or while loading; the message says why, for the MR."""


class FileTooLarge(UnreadableFile):
    def __init__(self, path: str, size: int) -> None:
        super().__init__(
            f"{code(path)} is larger than {MAX_FILE_BYTES // 1024} KiB ({size // 1024} KiB or more); review apps "
            "read only smaller files. Trim it."
        )


def plain(value: Any, limit: int = ECHO_LIMIT) -> str:
    """`value` as one short line with no backticks, for use inside an inline code span."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, dict):
        text = "(a mapping)"
    elif isinstance(value, (list, tuple)):
        text = "(a list)"
    else:
        text = f"(a {type(value).__name__})"
    text = _INVISIBLE.sub(" ", text).replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def code(value: Any) -> str:
    """`value` as inline code on the MR: in a code span GitLab renders no mention, link or
    reference, and with its backticks gone the value cannot close the span early."""
    text = plain(value)
    return f"`{text}`" if text.strip() else "(empty)"


class _BoundedLoader(yaml.SafeLoader):
    """Refuses nesting past MAX_DEPTH as it composes, before Python's recursion limit is near."""

    depth = 0
    path = ""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise UnreadableFile(f"{code(self.path)} is nested more than {MAX_DEPTH} levels deep; flatten it.")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _weigh(node: yaml.Node, path: str) -> int:
    """The node's size once aliases are expanded. Shared nodes are weighed once and counted
    at every use, so a bomb is measured in microseconds instead of expanded."""
    weights: dict[int, int] = {}
    on_path: set[int] = set()

    def weigh(current: yaml.Node, depth: int) -> int:
        key = id(current)
        if key in weights:
            return weights[key]
        if depth > MAX_DEPTH or key in on_path:
            raise UnreadableFile(
                f"{code(path)} is nested more than {MAX_DEPTH} levels deep, or an alias refers to itself; flatten it."
            )
        if isinstance(current, yaml.ScalarNode):
            total = 1 + len(current.value)
        else:
            on_path.add(key)
            children: list[yaml.Node] = []
            for item in current.value:
                children.extend(item if isinstance(item, tuple) else (item,))
            total = 1
            for child in children:
                total += weigh(child, depth + 1)
                if total > MAX_EXPANDED_WEIGHT:
                    break
            on_path.discard(key)
        weights[key] = total
        return total

    return weigh(node, 0)


def load_yaml(text: str, path: str) -> Any:
    """The document in `text`, or UnreadableFile saying what to fix. Safe types only; bounded
    in size before parsing and in alias expansion while loading."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise FileTooLarge(path, size)
    loader = None
    try:
        loader = _BoundedLoader(text)
        loader.path = path
        node = loader.get_single_node()
        if node is None:
            return None
        if _weigh(node, path) > MAX_EXPANDED_WEIGHT:
            raise UnreadableFile(
                f"{code(path)} expands to more than review apps read (its aliases repeat too much); "
                "write the values out or use fewer aliases."
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "it could not be parsed"
        raise UnreadableFile(f"{code(path)} is not valid YAML{where}: {plain(problem)}.") from None
    except RecursionError:
        raise UnreadableFile(f"{code(path)} is nested too deeply; flatten it.") from None
    finally:
        if loader is not None:
            loader.dispose()
