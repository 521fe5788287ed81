"""`herald`: run Herald's services, and use them from a terminal.

Each command's code is in the module of its name: `herald users …` in services/cli/users.py,
`segments`, `campaigns` (and `watch`), `events`, `dead_letters`, `usage`, `demo`; `serve`, `token` and
`migrate` in serve.py. What they share (options, the client, exit codes, output) is in
common.py and output.py.
"""

from __future__ import annotations

import os
import sys

# grpcio ≥ 1.81 runs its fork handlers when a process with live channels or servers starts a
# subprocess, and the forked child can abort on its closed epoll fd before it execs
# (grpc/grpc#43055). `herald serve`'s children always exec, so they need none: off, before grpc loads.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import typer

from services.cli import campaigns, dead_letters, demo, events, segments, serve, usage, users

HELP = """Run Herald's services, and use them from a terminal.

After `make run`, try `herald demo`. Commands print tables for people and one JSON object per
line with --json. Exit status: 0 done, 1 a call failed (the one line on stderr says why, naming
the field), 2 a usage mistake or no API secret, 3 a watched campaign stopped.
"""

app = typer.Typer(name="herald", help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  pretty_exceptions_show_locals=False, context_settings={"help_option_names": ["-h", "--help"]})
app.command("demo", rich_help_panel="Start here")(demo.demo)
app.add_typer(users.app, rich_help_panel="Use the services")
app.add_typer(segments.app, rich_help_panel="Use the services")
app.add_typer(campaigns.app, rich_help_panel="Use the services")
app.add_typer(events.app, rich_help_panel="Use the services")
app.add_typer(dead_letters.app, rich_help_panel="Use the services")
app.command("watch", rich_help_panel="Use the services", epilog=campaigns.WATCH_EXITS)(campaigns.watch_alias)
app.command("usage", rich_help_panel="Use the services")(usage.usage)
app.command("serve", rich_help_panel="Run the services")(serve.serve)
app.command("token", rich_help_panel="Run the services")(serve.token)
app.command("migrate", rich_help_panel="Run the services")(serve.migrate)


def main(argv: list[str] | None = None) -> int:
    """The `herald` entry point: runs the command of `argv` (default: the process's) and returns
    its exit status."""
    try:
        app(args=argv, prog_name="herald")
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
