import sys

from ircomp.cli import main

sys.exit(main())
