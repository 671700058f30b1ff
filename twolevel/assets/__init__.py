"""Files shipped inside the package: the default model and its card, TorchServe's config.

Read them through :mod:`twolevel.resources` (``importlib.resources``), never by a path relative
to the source tree: installed from a wheel, they live in site-packages.
"""
