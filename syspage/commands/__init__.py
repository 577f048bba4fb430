"""One module per subcommand: HELP, EXAMPLE, add_arguments(parser), run(args, ui) -> int."""
