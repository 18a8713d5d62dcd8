from amberpicd.cli.main import main

raise SystemExit(main())
