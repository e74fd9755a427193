"""The command line: the only place that turns errors into exit codes. ``main`` holds
the parser and the VMC commands, ``train`` the generative ones."""
