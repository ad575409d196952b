from reflectchat.cli.main import main

raise SystemExit(main())
