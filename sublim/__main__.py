import sys

from sublim.cli import main

sys.exit(main())
