"""A local web page to draw a digit and look inside a model (``steadynet serve``).

The page and its JSON API live in :mod:`steadynet.web.server`; the web framework (Starlette
and uvicorn) is an optional extra, ``pip install steadynet[web]``, imported only when a server
is built.
"""
