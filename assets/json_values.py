"""Can PostgreSQL store this JSON value? (Plain Python, no Django.)

jsonb refuses NUL characters, lone UTF-16 surrogates and the non-finite numbers
Python's json allows (NaN, Infinity); a deeply nested value also breaks recursive
code that reads it. Checking before the save gives a message instead of a crash.
"""

import math

MAX_DEPTH = 32


def json_problem(value, max_depth: int = MAX_DEPTH) -> str | None:
    """Why this value cannot be stored, or None. Iterative, so any depth is safe to check."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"is nested more than {max_depth} levels deep"
        if isinstance(item, dict):
            for key, child in item.items():
                problem = _text_problem(key)
                if problem:
                    return f"has a key that {problem}"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return f"has a text that {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"holds {item}, which JSON cannot store"
    return None


def _text_problem(text) -> str | None:
    if not isinstance(text, str):
        return None
    if "\x00" in text:
        return "contains a NUL character"
    if any("\ud800" <= char <= "\udfff" for char in text):
        return "contains a lone surrogate (invalid Unicode)"
    return None
