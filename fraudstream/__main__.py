import sys

from fraudstream.cli import main

sys.exit(main())
