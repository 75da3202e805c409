from kshock.cli import main

raise SystemExit(main())
