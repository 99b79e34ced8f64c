"""``python -m recgym.cli`` (and ``torchrun -m recgym.cli``): the ``recgym`` command."""

from __future__ import annotations

from recgym.cli import main

raise SystemExit(main())
