import sys

from fisherae.cli import main

sys.exit(main())
