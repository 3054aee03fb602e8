"""nst: neural style transfer on PyTorch Lightning and Hydra."""

from nst.api import stylize
from nst.errors import UserError

__all__ = ["UserError", "stylize"]
__version__ = "0.1.0"
