"""Rewrites the generated part of a Markdown file: the text between two marker comments."""

import sys


def replace_between(path, begin, end, text):
    """Puts `text` between the lines `begin` and `end` of the file at `path`, keeping the rest."""
    with open(path) as f:
        doc = f.read()
    if begin not in doc or end not in doc:
        sys.exit(f"the markers {begin} and {end} are missing from {path}")
    head, rest = doc.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text + "\n" + end + tail)
