"""TorchServe handler for twolevel (installed as the package ``twolevel_handlers``).

The handler file itself, :mod:`twolevel_handlers.twolevel_handler`, is what
``twolevel-cli package`` puts into the model archive; it is a thin shell over :mod:`twolevel`.
"""
from pathlib import Path

#: Path of the handler source, for torch-model-archiver's ``--handler``.
HANDLER_FILE = Path(__file__).resolve().parent / "twolevel_handler.py"
