"""Property tests (hypothesis) over every input mmm takes: deployment, settings and golden
files, the command line, Slack commands and button clicks, and gateway requests."""
