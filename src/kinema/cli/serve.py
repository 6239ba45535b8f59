"""The web studio: serve, and serve token create|list|revoke."""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated

import typer

from kinema.cli.common import JsonOption, ModelOption, add_group
from kinema.errors import InputError

app = typer.Typer()
serve_app = add_group(
    app,
    "serve",
    "The web studio: API, pages and job workers on this machine.",
    "kinema serve --port 8000 --workers 2",
    bare_shows_help=False,
)
serve_token_app = add_group(
    serve_app, "token", "API tokens for the web studio.", "kinema serve token create --name laptop"
)


@serve_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Generation worker processes (0: queue only).")] = 1,
    model: ModelOption = None,
) -> None:
    """Serve the web studio and its job workers; the first start prints a login URL.

    Example: kinema serve --port 8000 --workers 2
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from kinema.state import kinema_home
    from kinema.web import create_app
    from kinema.web.tokens import TokenStore

    if not 1 <= port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {port}")
    if not 0 <= workers <= 64:
        raise InputError(f"--workers must be between 0 and 64, got {workers}")
    home = kinema_home()
    first = TokenStore(home).ensure_first()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(home, model=model, workers=workers),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
    )

    def announce() -> None:
        # only once the socket listens: a URL printed earlier may be opened too soon
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        if first:
            typer.echo(f"kinema studio: open {url}/login?token={first}", err=True)
            typer.echo("  (this first token is shown once; `kinema serve token create` makes more)", err=True)
        else:
            typer.echo(
                f"kinema studio: {url}  (sign in with a token; `kinema serve token create` makes one)",
                err=True,
            )

    threading.Thread(target=announce, daemon=True).start()
    server.run()


@serve_token_app.command("create")
def serve_token_create(
    name: Annotated[str, typer.Option(help="A label to tell tokens apart.")] = "token",
    role: Annotated[
        str,
        typer.Option(
            metavar="creator|reviewer|both",
            help="creator: makes takes, sees and publishes its own; reviewer: sees every item and "
            "approves, rejects or withdraws; both (default).",
        ),
    ] = "both",
) -> None:
    """Make a token; prints it once (only its hash is stored).

    Example: kinema serve token create --name ada --role reviewer
    """
    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore, parse_roles

    roles = parse_roles(role)
    token, secret = TokenStore(kinema_home()).create(name, roles)
    typer.echo(secret)
    typer.echo(
        f"token {token.id} ({token.name}, {' and '.join(token.roles)}) created; shown once. "
        "Sign in at /login?token=<it> "
        "or send 'Authorization: Bearer <it>'",
        err=True,
    )


@serve_token_app.command("list")
def serve_token_list(as_json: JsonOption = False) -> None:
    """The tokens: id, name, roles, when made, whether revoked (never the secrets).

    Example: kinema serve token list --json
    """
    from dataclasses import asdict

    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore

    tokens = TokenStore(kinema_home()).list()
    if as_json:
        typer.echo(json.dumps([asdict(t) for t in tokens]))
        return
    for t in tokens:
        roles = "both" if len(t.roles) == 2 else t.roles[0]
        typer.echo(
            f"{t.id}  {t.name:<20} {roles:<8} {t.created}  {'revoked ' + t.revoked if t.revoked else 'live'}"
        )


@serve_token_app.command("revoke")
def serve_token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `list`).")],
) -> None:
    """Revoke a token: its requests are refused from now on (its jobs stay).

    Example: kinema serve token revoke 3f9a1c2e
    """
    from kinema.state import kinema_home
    from kinema.web.tokens import TokenStore

    token = TokenStore(kinema_home()).revoke(token_id)
    typer.echo(f"revoked token {token.id} ({token.name})")
