"""One module per executable: its parser, Resource, Summary and main()."""
