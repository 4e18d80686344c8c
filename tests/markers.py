"""Line numbers of marked source lines, for tests that check tracebacks."""


def marked_line(path, marker):
    """The number of the line of path containing marker (not counting a
    line that asks for it, which names the marker too)."""
    with open(path) as source:
        for number, line in enumerate(source, 1):
            if marker in line and "line_of(" not in line:
                return number
    raise AssertionError(f"no line of {path} contains {marker!r}")
