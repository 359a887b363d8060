import sys

from mcdenoise.cli import main

sys.exit(main())
