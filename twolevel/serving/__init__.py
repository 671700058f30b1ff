"""Serving twolevel over HTTP, without importing a server at ``import twolevel`` time.

* :mod:`twolevel.serving.requests` -- one HTTP request (raw body, multipart, JSON, KServe v1/v2,
  ``X-Twolevel-*`` headers) -> audio bytes and option text; shared by every model server.
* :mod:`twolevel.serving.torchserve` -- the model archive (.mar) and a TorchServe process on
  loopback: build, start, wait until ready, status, stop.

Neither module imports TorchServe itself (``ts``): the server runs as a separate process.
"""
