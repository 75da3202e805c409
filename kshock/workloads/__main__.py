from kshock.workloads.cli import main

raise SystemExit(main())
