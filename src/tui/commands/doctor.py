"""`tunedeck doctor [--repair]`: is tunedeck's own state healthy (state dir, job registry,
hosts.toml)? `--repair` sets a damaged registry aside and starts clean with what it could read."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `doctor` to the root app."""
    app.command("doctor")(doctor)


def doctor(
    repair: bool = typer.Option(
        False, "--repair", help="Keep a copy of a damaged registry, salvage its jobs, start clean."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> int:
    """Check the state dir, the job registry and hosts.toml; exit 1 while one is unhealthy."""
    from tunedeck.core.jobs.doctor import check_all, repair_registry

    repaired = repair_registry() if repair else None
    checks = check_all()
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(
            {
                "ok": all(c.ok for c in checks),
                "checks": [c.to_dict() for c in checks],
                "repair": repaired.to_dict() if repaired else None,
            }
        )
    else:
        _print_text(checks, repaired, repair)
    return 0 if all(c.ok for c in checks) else 1


def _print_text(checks, repaired, asked_to_repair: bool) -> None:
    if repaired:
        typer.echo(
            f"repaired {repaired.registry}: {repaired.salvaged} job(s) salvaged;"
            f" the damaged file is kept as {repaired.backup}"
        )
    elif asked_to_repair:
        typer.echo("nothing to repair")
    for check in checks:
        mark = "ok     " if check.ok else "PROBLEM"
        typer.echo(f"{mark} {check.name}: {check.detail} ({check.path})")
        if check.fix and not check.ok:
            typer.echo(f"        fix: {check.fix}")
