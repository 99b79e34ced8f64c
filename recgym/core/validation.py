"""One validation layer for the arguments of every public constructor.

Each check returns the value in its canonical type or raises ``TypeError`` /
``ValueError`` naming the argument, the value it got, what is allowed and, where there is
one, the fix. Integral values of any numeric type (``2.0``, ``np.int64(3)``) are accepted
where an integer is meant; booleans are not numbers here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(name: str, value: Any, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(float(value)) or not float(value).is_integer():
            raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    number = int(value)
    low = "-inf" if minimum is None else minimum
    high = "inf" if maximum is None else maximum
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be in [{low}, {high}], got {number}")
    return number


def real(name: str, value: Any, *, minimum: float | None = None,
         maximum: float | None = None) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {number}")
    return number


def reals(name: str, values: Any, *, length: int | None = None) -> list[float]:
    """A sequence of finite floats (of ``length`` entries when given)."""
    if isinstance(values, (str, bytes)) or not (isinstance(values, Sequence)
                                                 or hasattr(values, "__array__")):
        raise TypeError(f"{name} must be a sequence of numbers, got {_shown(values)}")
    numbers_ = [real(f"{name}[{i}]", v) for i, v in enumerate(list(values))]
    if length is not None and len(numbers_) != length:
        raise ValueError(f"{name} needs {length} values, got {len(numbers_)}")
    return numbers_


def flag(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` (numpy booleans accepted; 0 / 1 and strings refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def device(value: Any, name: str = "device") -> torch.device:
    """A torch device that exists on this machine."""
    try:
        parsed = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda:0', got "
                         f"{_shown(value)} ({error})") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CUDA" if torch.version.cuda else "a CPU-only"
            raise ValueError(f"{name}={value!r}, but this machine has no CUDA device (torch "
                             f"{torch.__version__} is {build} build): use 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={value!r}, but there are only "
                             f"{torch.cuda.device_count()} CUDA devices")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r}, but MPS is not available here: use 'cpu'")
    return parsed
