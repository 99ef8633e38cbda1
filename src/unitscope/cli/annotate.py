"""``unitscope annotate``: serve a dissection run's units to human annotators (the paper's Mechanical Turk)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path

import click

from unitscope.cli.options import check_positive, require_run, run_model_options, run_trust
from unitscope.errors import UsageError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before any work: a port in use is one line, not uvicorn's log and exit 1
    after the tasks were drawn. Passed to uvicorn, so nothing can take the port in between."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is outside 1-65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise UsageError(f"--host {host} cannot be resolved ({err}); give an address such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port or stop the "
                         "program that uses it") from None
    return sock


@click.command("annotate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--layer", default=None, help="Layer to annotate (default: the run's first).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others than loopback warn.")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--db", type=click.Path(path_type=Path), default=None, help="Database file (default RUN/annotations.db).")
@click.option("--add-annotator", "add_annotator", default=None,
              help="Create an annotator NAME, print its token once, and exit.")
@click.option("--per-unit", type=int, default=3, show_default=True, help="Annotations wanted per unit.")
@click.option("--max-units", type=int, default=None, help="Serve only the first N units of the layer.")
@click.option("--device", default="cpu", show_default=True, help="Device to draw the unit regions on.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Draws the catch images and salts each annotator's image order (recorded in the database).")
@click.option("--allow-small-tasks", "allow_small", is_flag=True,
              help="Serve a run that kept fewer than 57 top images per unit as smaller tasks (the count is shown) "
                   "instead of refusing it.")
@run_model_options
def command(run: Path, layer: str | None, host: str, port: int, db: Path | None, add_annotator: str | None,
            per_unit: int, max_units: int | None, device: str, seed: int, allow_small: bool) -> None:
    """Serve RUN's units as annotation tasks: 57 top images with the unit's region + 3 hidden catch images.

    Each image shows where the unit fires with the rest dimmed; each annotator sees the images in an order of
    their own (drawn from their name, the unit and --seed). A run dissected with fewer than --topk 60 is
    refused unless --allow-small-tasks.
    """
    check_positive(port=port, per_unit=per_unit, max_units=max_units)
    require_run(run)
    sock = None
    if add_annotator is None:
        sock = click.get_current_context().with_resource(contextlib.closing(listening_socket(host, port)))
    from unitscope.annotate.security import NAME_PATTERN, new_token, token_hash
    from unitscope.annotate.store import Store

    store = Store(db or run / "annotations.db")
    if add_annotator is not None:
        if not NAME_PATTERN.fullmatch(add_annotator):
            raise UsageError("annotator names are 1-40 letters, digits, spaces, '.', '_' or '-'")
        token = new_token()
        store.add_annotator(add_annotator, token_hash(token))
        click.echo(f"annotator {add_annotator!r} added; token (shown only now, keep it secret):\n{token}")
        click.echo(f"sign in at http://{host}:{port}/login")
        return
    from unitscope.annotate.protocol import N_CATCH, TASK_IMAGES
    from unitscope.annotate.runview import read_run
    from unitscope.annotate.tasks import build_tasks, task_size

    view = read_run(run)
    chosen = layer or view.layers[0]
    if chosen not in view.layers:
        raise UsageError(f"no layer {chosen!r} in {run}; choose one of {', '.join(view.layers)}")
    n_real = task_size(view.top_images[chosen], allow_small)  # refuses a small run before any drawing
    store.set_meta("per_unit", str(per_unit))
    added = build_tasks(view, store, chosen, max_units=max_units, seed=seed, device=device, trust=run_trust(),
                        allow_small=allow_small)
    served = sum(1 for name, _ in store.units() if name == chosen)
    size = (f"{n_real + N_CATCH} images per task ({n_real} top + {N_CATCH} catch; the paper's tasks show "
            f"{TASK_IMAGES})" if n_real + N_CATCH < TASK_IMAGES else f"{TASK_IMAGES} images per task")
    click.echo(f"{served} units of {chosen} to annotate ({added} drawn now), {size}, {per_unit} annotations each")
    if not is_loopback(host):
        click.echo(f"warning: binding to {host} exposes the app beyond this machine; tokens travel in clear "
                   "text without a TLS proxy in front", err=True)
    if store.count("annotators") == 0:
        click.echo(f"no annotators yet: add one with `unitscope annotate {run} --add-annotator NAME`", err=True)
    import uvicorn

    from unitscope.annotate.app import create_app

    click.echo(f"serving on http://{host}:{port}/login (Ctrl-C stops; answers are saved as they arrive)")
    config = uvicorn.Config(create_app(store, chosen), host=host, port=port, log_level="warning", server_header=False)
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
