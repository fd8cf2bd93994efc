"""The reading side: a web view of stories, Atom and JSON Feed out, an HTTP API, and the digest by e-mail.

Everything here reads through :mod:`aggregator.query` and :class:`aggregator.api.Aggregator`; nothing writes.
The web stack (FastAPI, Jinja2, uvicorn) is imported only by the commands that serve it.
"""
