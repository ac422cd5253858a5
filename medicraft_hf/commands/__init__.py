"""One module per `medicraft` subcommand (see medicraft_hf/cli.py)."""
