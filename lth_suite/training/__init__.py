"""Training one network or a population of them: the loop, its steppers, data, speed."""

from ..deprecated import aliases as _aliases

# The names lth_suite/training.py had, deprecated (lth_suite/deprecated.py lists them).
__getattr__ = _aliases(__name__)
