"""The ``twolevel-cli`` command line (installed as the package ``twolevel_cli``)."""
