"""Topic patterns: literal MQTT topics with a {device} segment and, for one-value-per-topic formats, a {channel} segment."""

import re

_PLACEHOLDER = re.compile(r"\{[^{}/]*\}")
_SLOTS = {"{device}": "(?P<device>[^/]+)", "{channel}": "(?P<channel>[^/]+)"}


def pattern_problem(pattern) -> str | None:
    """Why this is not a usable topic pattern, or None."""
    if not isinstance(pattern, str) or pattern.count("{device}") != 1:
        return 'must be a topic pattern with exactly one {device}, e.g. "iotwatt/{device}/telemetry"'
    if pattern.count("{channel}") > 1:
        return "may hold {channel} at most once"
    unknown = sorted(set(_PLACEHOLDER.findall(pattern)) - set(_SLOTS))
    if unknown:
        return f"holds {', '.join(unknown)}; only {{device}} and {{channel}} are placeholders"
    if "+" in pattern or "#" in pattern:
        # A published topic never holds MQTT wildcards, so such a pattern could never match.
        return "holds an MQTT wildcard (+ or #); write the literal topic with {device} where the device's name goes"
    return None


def topic_regex(pattern: str) -> re.Pattern:
    """Every character but the placeholders is literal ('.' and '+' match only themselves)."""
    parts = re.split(r"(\{device\}|\{channel\})", pattern)
    return re.compile("^" + "".join(_SLOTS.get(part) or re.escape(part) for part in parts) + "$")


def match_topic(topic: str, pattern: str) -> re.Match | None:
    try:
        return topic_regex(pattern).match(topic)
    except re.error:  # an unchecked pattern with {device} twice
        return None


def wildcard_levels(pattern: str) -> list[str]:
    """The pattern's levels, "+" for any level a placeholder is in (it can be any text there)."""
    return ["+" if _PLACEHOLDER.search(level) else level for level in pattern.split("/")]


def levels_overlap(first: list[str], second: list[str]) -> bool:
    """Could one published topic match both (levels, "+" for any one level)?"""
    return len(first) == len(second) and all(a == b or "+" in (a, b) for a, b in zip(first, second))
