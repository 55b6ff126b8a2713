"""A local web page to draw a digit and look inside a model (``steadynet serve``).

One job a module, from pure to stateful:

- :mod:`~steadynet.web.inspect`: what the page shows of one input (probabilities, hidden
  activations, saliency), pure functions of a model and arrays;
- :mod:`~steadynet.web.requests`: what a request may carry, checked, and
  :class:`~steadynet.web.requests.RequestError`, a refusal with its HTTP status;
- :mod:`~steadynet.web.state`: :class:`~steadynet.web.state.Inspector`, the served model
  (followed as its run folder trains), the test set and the run, one method per answer;
- :mod:`~steadynet.web.app`: the Starlette app (routes, JSON errors) and its middleware;
- :mod:`~steadynet.web.server`: :func:`~steadynet.web.server.make_server` and the uvicorn
  server on a socket bound before it runs.

The JSON API is documented in ``docs/serve.md``. The web framework (Starlette and uvicorn) is
an optional extra, ``pip install steadynet[web]``, imported only when an app or server is
built.
"""
