from duebook_tally_agent.cli import main

raise SystemExit(main())
