"""The WSGI side: the middleware, one request's exchange with the server, and each framework's hooks.

The path of one request: :mod:`.middleware` (wiring, the monitoring API's prefix) →
:mod:`.exchange` (``start_response``, the body, ``close()``: the record) → the recorder's
queue (:mod:`wsgimon.recording`). Framework hooks in :mod:`.integrations` name endpoints and
hand over exceptions the framework turned into 500s.
"""
