"""tunedeck.tui: the faces of tunedeck, the Textual app and the command line."""
