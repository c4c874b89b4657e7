"""``python -m fl_i2moe_layer``: the ``fl-i2moe`` command line."""

from __future__ import annotations

from fl_i2moe_layer.cli import main

raise SystemExit(main())
