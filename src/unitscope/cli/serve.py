"""``unitscope serve``: browse finished runs, compare them and see what one forward pass finds in an image."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from unitscope.cli.annotate import is_loopback, listening_socket
from unitscope.cli.options import check_positive, require_path, require_run, run_model_options, run_trust
from unitscope.errors import UsageError


@click.command("serve")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others than loopback warn.")
@click.option("--port", type=int, default=8766, show_default=True)
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="Read the server's token from this file (first line) instead of printing a new one.")
@click.option("--device", default="cpu", show_default=True, help="Device of the runs' networks.")
@click.option("--workers", type=int, default=1, show_default=True, help="Images worked on at once (1-2).")
@click.option("--queue", type=int, default=3, show_default=True,
              help="Uploads that may wait for a worker; more are answered 503 with Retry-After.")
@click.option("--max-upload-mb", type=int, default=20, show_default=True, help="Largest upload accepted.")
@click.option("--fit-n", type=int, default=None,
              help="Probe images each run's concept vectors are fitted on (default: see's).")
@run_model_options
def command(runs: tuple[Path, ...], host: str, port: int, token_file: Path | None, device: str, workers: int,
            queue: int, max_upload_mb: int, fit_n: int | None) -> None:
    """Serve RUNS' reports and unit pages, `compare` between them, and an upload form that shows an image's
    scene, objects (boxes, segmentation, class activation map) and the units behind each object.

    Only this machine can connect unless --host says otherwise; every page needs the token printed at start.
    """
    check_positive(port=port, workers=workers, max_upload_mb=max_upload_mb)
    if fit_n is not None and fit_n < 2:
        raise UsageError(f"--fit-n must be at least 2, got {fit_n}")
    if workers > 2:
        raise UsageError(f"--workers {workers}: at most 2 images are worked on at once; give 1 or 2")
    if queue < 0:
        raise UsageError(f"--queue {queue} is negative; give 0 or more")
    for k, run in enumerate(runs):
        require_run(run, f"RUN {k + 1}" if len(runs) > 1 else "RUN")
    require_path(token_file, "--token-file")
    from unitscope.serve.security import read_token_file

    token = read_token_file(token_file) if token_file is not None else None
    sock = click.get_current_context().with_resource(contextlib.closing(listening_socket(host, port)))
    port = int(sock.getsockname()[1])
    from unitscope.serve.app import ServeSettings, create_app
    from unitscope.serve.runs import open_runs, warm_in_background

    served = open_runs(list(runs), device, run_trust(), fit_n)
    if token is None:
        import secrets

        token = secrets.token_urlsafe(32)
        click.echo(f"token (shown only now; keep it secret): {token}")
    if not is_loopback(host):
        click.echo(f"warning: binding to {host} exposes the server beyond this machine; the token travels in clear "
                   "text without a TLS proxy in front", err=True)
    for one in served:
        refused = f" ({one.files.refused} links out of the run refused)" if one.files.refused else ""
        click.echo(f"run {one.name}: {one.directory} ({len(one.files.files)} pages and pictures){refused}")
    import uvicorn

    warm_in_background(served, lambda line: click.echo(line, err=True))

    settings = ServeSettings(max_upload=max_upload_mb * 1024 * 1024, workers=workers, waiting=queue)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving on http://{shown}:{port}/ (sign in at /login; Ctrl-C stops)", nl=True)
    config = uvicorn.Config(create_app(served, token, settings), log_level="warning", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
