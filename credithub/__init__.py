"""credithub: the command line and the supervisor that starts the parts."""
