"""dashboard: start the Streamlit dashboard on a model, from any folder.

The dashboard's router and pages are `app/` at the top of the repository; the wheel carries them
as package data (`tumor_model/app/`), as it carries the shipped model, so `neuroscan dashboard`
works after `pip install .` wherever it is run. Its Streamlit settings are
`app/.streamlit/config.toml` (Streamlit reads the one beside the script it runs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tumor_model.commands.args import artifacts_arg

ROUTER = "streamlit_app.py"


def app_script() -> Path:
    """The dashboard's router: the installed wheel's `tumor_model/app/`, else, in a source
    checkout, `app/` at the top of the repository."""
    installed = Path(__file__).resolve().parents[1] / "app" / ROUTER
    if installed.is_file():
        return installed
    return Path(__file__).resolve().parents[2] / "app" / ROUTER


def command(args, script: Path | None = None) -> list[str]:
    """The `streamlit run` command line for `args`."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(script or app_script())]
    cmd += ["--server.port", str(args.port), "--server.address", args.address]
    return cmd


def cmd_dashboard(args) -> int:
    script = app_script()
    if not script.is_file():
        raise ValueError(f"the dashboard's {ROUTER} is not at {script}: reinstall neuroscan")
    env = dict(os.environ)
    if args.artifacts:
        env["NEUROSCAN_ARTIFACTS"] = str(Path(args.artifacts).expanduser().resolve())
    if args.data_dir:
        env["NEUROSCAN_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    print(f"NeuroScan dashboard: http://{args.address}:{args.port} (Ctrl+C stops it)", flush=True)
    # Streamlit takes this process's place: Ctrl+C and a service manager's SIGTERM reach it
    os.execve(sys.executable, command(args, script), env)


def add_parsers(sub, parent) -> None:
    p = sub.add_parser(
        "dashboard",
        parents=[parent],
        help="start the dashboard (Streamlit) on the model, from any folder",
        description=__doc__.split("\n\n")[0],
    )
    artifacts_arg(p)
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the dataset the pages browse (default: $NEUROSCAN_DATA_DIR, else ../shared/data/* "
        "or ./data/* when present)",
    )
    p.add_argument("--port", type=int, default=8501, help="default: %(default)s")
    p.add_argument(
        "--address", default="localhost", help="address to serve on (default: %(default)s)"
    )
    p.set_defaults(func=cmd_dashboard)
