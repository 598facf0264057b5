"""``python -m sk_animals``: the ``sk-animals`` command."""

import sys

from .cli import main

sys.exit(main())
