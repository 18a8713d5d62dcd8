from amberpicd.cli import main

raise SystemExit(main())
