"""Names and values in one-line messages: "did you mean", short lists, escaped and shortened text."""

from __future__ import annotations


def list_names(names, limit: int = 20, quote: bool = False) -> str:
    names = list(names)
    shown = [f"'{show_name(n)}'" if quote else show_name(n) for n in names[:limit]]
    text = ", ".join(shown)
    return text + (f", ... ({len(names)} in all)" if len(names) > limit else "")


_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def show_name(name, limit: int = 60) -> str:
    """A column name (or value) for a one-line message: control characters escaped, long text cut."""
    text = str(name).translate(_CONTROL)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def reason(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), shortened."""
    text = str(e).strip()
    return show_name(text.splitlines()[0], 200) if text else type(e).__name__
