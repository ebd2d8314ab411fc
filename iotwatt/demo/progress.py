import sys
import time


class Progress:
    """One status line: redrawn in place on a terminal, a line every few seconds in a log."""

    def __init__(self, label: str, total: int, every_s: float = 5.0):
        self.label = label
        self.total = total
        self.every_s = every_s
        self.tty = sys.stdout.isatty()
        self.last_shown = None
        self.last_time = 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if done == self.last_shown and not final:
            return
        if not self.tty and not final and now - self.last_time < self.every_s:
            return
        self.last_shown, self.last_time = done, now
        text = f"  {self.label} {done:,}/{self.total:,}"
        if self.tty:
            sys.stdout.write("\r" + text + ("\n" if final else ""))
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
