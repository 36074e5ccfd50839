from sdnet.cli import main

raise SystemExit(main())
