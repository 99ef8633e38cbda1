"""unitscope: find out what every unit of a convolutional network detects."""

from unitscope.errors import UsageError

__all__ = ["UsageError"]
__version__ = "0.1.0"
