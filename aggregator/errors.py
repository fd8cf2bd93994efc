"""The errors the command line reports in one line, defined apart from the modules that raise them: catching
them loads neither SQLAlchemy nor the search code, so a command that needs neither starts without them."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be opened, upgraded or locked."""


class SearchError(ValueError):
    """A query that cannot be searched; the message is one line for the user."""
