"""Dotted paths into a JSON document.

"params.switch:0.aenergy.total" walks keys; a ':' is an ordinary key character.
"aenergy.by_minute[1]" or "aenergy.by_minute.1" takes an array element.
"a\\.b" is the one key "a.b" (a backslash makes the next character literal).
A JSON list of keys and indexes (["params", "switch:0", "apower"]) is accepted too.
"" (or []) is the document itself.
"""

from .errors import ParameterMapError

Path = tuple[str | int, ...]

MISSING = object()  # what `lookup` returns when the path leads nowhere


def parse_path(raw, where: str) -> Path:
    if isinstance(raw, list):
        for item in raw:
            if not (isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool) and item >= 0)):
                raise ParameterMapError(f"{where}: a path given as a list holds keys (text) and array indexes (0, 1, ...), not {item!r}.")
        return tuple(raw)
    if not isinstance(raw, str):
        raise ParameterMapError(f'{where} must be a dotted path such as "params.switch:0.apower", not {_short(raw)}.')
    try:
        return _parse_text(raw)
    except ValueError as exc:
        raise ParameterMapError(f"{where}: path {raw!r} {exc}.") from None


def _parse_text(text: str) -> Path:
    segments: list[str | int] = []
    key: list[str] = []
    in_key = False  # reading a key's characters
    after_index = False  # just closed a [n]: only '.', '[' or the end may follow
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 == n:
                raise ValueError("ends with a lone backslash")
            key.append(text[i + 1])
            in_key, i = True, i + 2
        elif ch == ".":
            if in_key:
                segments.append("".join(key))
                key, in_key = [], False
            elif not after_index:
                raise ValueError("has an empty key (two dots, or a dot at the start)")
            if i == n - 1:
                raise ValueError("ends with a dot")
            after_index, i = False, i + 1
        elif ch == "[":
            close = text.find("]", i)
            digits = text[i + 1 : close] if close > i else ""
            if not (digits.isascii() and digits.isdigit()):
                raise ValueError("has a '[' that is not an array index like [0]")
            if in_key:
                segments.append("".join(key))
                key, in_key = [], False
            segments.append(int(digits))
            after_index, i = True, close + 1
        else:
            if after_index:
                raise ValueError("needs a '.' after ']'")
            key.append(ch)
            in_key, i = True, i + 1
    if in_key:
        segments.append("".join(key))
    return tuple(segments)


def lookup(document, path: Path):
    """The value at `path`, or MISSING. A numeric key also indexes an array ("by_minute.1")."""
    value = document
    for segment in path:
        if isinstance(value, dict):
            key = str(segment)
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list):
            index = segment if isinstance(segment, int) else (int(segment) if segment.isascii() and segment.isdigit() else None)
            if index is None or index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def blocked_at(document, path: Path) -> tuple[Path, object] | None:
    """Where the walk to `path` meets a value that is not an object or array (null, "unavailable", a number)
    before its end: that prefix and the value. None when the path leads on to its end or to an absent key."""
    value = document
    for depth, segment in enumerate(path):
        if not isinstance(value, (dict, list)):
            return path[:depth], value
        value = lookup(value, (segment,))
        if value is MISSING:
            return None
    return None


def nest(document, path: Path):
    """The document placed at `path` of an otherwise empty one: nest(p, ("params", "switch:0")) = {"params": {"switch:0": p}}."""
    for segment in reversed(path):
        document = {str(segment): document}
    return document


def path_text(path: Path) -> str:
    return ".".join(str(segment).replace(".", "\\.") for segment in path)


def _short(raw) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
