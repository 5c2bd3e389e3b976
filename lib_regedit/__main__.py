from .cli import PROG, run_as_command

run_as_command(PROG)
