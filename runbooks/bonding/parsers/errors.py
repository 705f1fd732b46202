"""The one error every bonding parser raises for input that is not what it claims to be.

Parsers are tolerant of lines they do not know (kernels and tools add fields over time), but a
file that is not the claimed command's output, or a known field with an impossible value, must be
reported with the exact line, so that a user can look at the file and see the problem.
"""

from __future__ import annotations

__all__ = ["ParseError"]


class ParseError(ValueError):
    """Input that is not the output it claims to be.

    ``source`` names what was being parsed (a command or a file name), ``line_number`` is 1-based
    (0 when the problem is the input as a whole, e.g. it is empty), ``line`` is the offending line.
    """

    def __init__(self, source: str, line_number: int, line: str, message: str) -> None:
        self.source = source
        self.line_number = line_number
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"line {self.line_number}" if self.line_number else "input"
        shown = self.line if len(self.line) <= 120 else self.line[:117] + "..."
        suffix = f": {shown!r}" if self.line_number else ""
        return f"{self.source}: {where}: {self.message}{suffix}"

    def __reduce__(self):  # keep pickling (multiprocessing, hypothesis) working with 4 args
        return (type(self), (self.source, self.line_number, self.line, self.message))
