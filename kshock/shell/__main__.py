import sys

from kshock.shell.app import main

sys.exit(main())
