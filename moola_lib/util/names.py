"""Messages for a name that is not one of the valid ones."""

from __future__ import annotations

import difflib


def valid_names_hint(name, valid) -> str:
    """ " Did you mean 'x'? Valid names: a, b, ..." for an unknown ``name`` (the suggestion only if close)."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    return f"{suggestion} Valid names: {', '.join(valid)}"
