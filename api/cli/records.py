"""`kcc records purge`: delete call records and what belongs with them older than N days."""

from __future__ import annotations

from typing import Annotated

import typer

records_app = typer.Typer(
    help="Keep the call records within their retention period.", no_args_is_help=True
)


@records_app.command("purge")
def purge(
    older_than_days: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Delete what is older than N days (by the app's clock: KCC_NOW moves it).",
        ),
    ],
) -> None:
    """Delete call records, wrap-up notes, adviser state changes and monitor sessions older than
    N days from the database (KCC_DATABASE_URL), and say how many of each."""
    from api.cli.main import _settings
    from api.database.schema import SchemaError, open_database
    from ivr.retention import RecordPurger, retention_cutoff
    from routing.clock import Clock, ShiftedClock, SystemClock

    settings = _settings()
    clock: Clock = ShiftedClock(settings.now) if settings.now else SystemClock()
    cutoff = retention_cutoff(clock.now(), older_than_days)
    try:
        engine = open_database(settings.database_url)
    except SchemaError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    try:
        counts = RecordPurger(engine).purge_before(cutoff)
    finally:
        engine.dispose()
    typer.echo(f"deleted what is older than {cutoff.isoformat(timespec='seconds')}:")
    typer.echo(f"  call records:      {counts.call_records}")
    typer.echo(f"  wrap-up notes:     {counts.wrap_ups}")
    typer.echo(f"  state changes:     {counts.state_changes}")
    typer.echo(f"  monitor sessions:  {counts.monitor_sessions}")


def register_records_commands(app: typer.Typer) -> None:
    app.add_typer(records_app, name="records")
