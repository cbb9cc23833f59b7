"""``redisolar export``: a fleet's readings to a CSV or NDJSON file, with a progress bar, resumable by site.

Resuming: next to ``FILE``, ``FILE.progress`` holds the export's parameters (its first line, JSON)
and then, after each site whose rows are on disk (flushed and fsynced), a line ``SITE_ID BYTES``:
the file's length once that site was written. ``--resume`` checks that the parameters are the same,
cuts ``FILE`` back to the last recorded length (dropping the rows of a site cut short), skips the
recorded sites and appends the others. A torn last line (the process killed while writing it) is
ignored, so that site is exported again. The progress file is removed when the export completes;
``--resume`` without one starts afresh. Sites go by ascending id (or in the order of ``--site``), so
a site created after the first run is exported on resume if its id comes later.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from redisolar import store
from redisolar.cli import CliContext, _friendly_errors, main, pass_cli
from redisolar.models.site import Site
from redisolar.services import Services
from redisolar.services.export import FORMATS, RESOLUTIONS, ExportRequest, fleet_sites, header, site_chunks
from redisolar.timeutil import as_utc

PROGRESS_SUFFIX = ".progress"


class IsoDateTime(click.ParamType):
    """An ISO 8601 date or date-time (``2026-03-01``, ``2026-03-01T06:00:00-05:00``); naive means UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return as_utc(value)
        try:
            return as_utc(datetime.fromisoformat(str(value)))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or date-time", param, ctx)


@dataclass(frozen=True)
class ExportParams:
    """What a progress file was written for: a resumed export must ask for the same."""

    start: str
    end: str
    format: str
    resolution: str
    sites: list[int]


class ProgressLog:
    """``FILE.progress``: the parameters, then ``SITE_ID BYTES`` per completed site (see the module)."""

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(output.name + PROGRESS_SUFFIX)

    def start(self, params: ExportParams) -> None:
        """Begin a new log for ``params`` (replacing any earlier one)."""
        self._write(json.dumps(asdict(params)) + "\n", "w")

    def completed(self, params: ExportParams) -> tuple[set[int], int | None] | None:
        """The sites done and the output's length after the last of them (None: no site yet), or
        None without a log. ClickException if the log is for other parameters."""
        if not self.path.exists():
            return None
        first, *lines = self.path.read_text(encoding="utf-8").split("\n")
        if first != json.dumps(asdict(params)):
            raise click.ClickException(
                f"{self.path} was written for another export ({first}); run without --resume to start afresh"
            )
        done: set[int] = set()
        length: int | None = None
        for line in lines[:-1]:  # the last item is "" after a complete line, or a torn line
            site_id, size = (int(part) for part in line.split())
            done.add(site_id)
            length = size
        return done, length

    def record(self, site_id: int, length: int) -> None:
        """Note that ``site_id`` is on disk and the output is ``length`` bytes long."""
        self._write(f"{site_id} {length}\n", "a")

    def remove(self) -> None:
        """Delete the log (the export is complete)."""
        self.path.unlink(missing_ok=True)

    def _write(self, text: str, mode: str) -> None:
        with self.path.open(mode, encoding="utf-8") as log:
            log.write(text)
            log.flush()
            os.fsync(log.fileno())


@click.command("export")
@click.option(
    "--start", type=IsoDateTime(), required=True, help="Start of the range (inclusive); naive means UTC."
)
@click.option(
    "--end", type=IsoDateTime(), required=True, help="End of the range (exclusive); naive means UTC."
)
@click.option(
    "--site", "sites", type=click.IntRange(1), multiple=True, help="A site to export (default: every site)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option(
    "--resolution", type=click.Choice(RESOLUTIONS), default="raw", show_default=True,
    help="raw readings, or sums per UTC hour or per local day of each site.",
)  # fmt: skip
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write."
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted export of the same parameters (FILE.progress)."
)
@pass_cli
def export(
    cli: CliContext,
    start: datetime,
    end: datetime,
    sites: tuple[int, ...],
    fmt: str,
    resolution: str,
    output: Path,
    resume: bool,
) -> None:
    """Export the readings of every site (or of each --site) to FILE, site after site.

    Rows carry the site, its time zone, UTC and site-local timestamps (docs/time-and-history.md). Resumable
    by site: FILE.progress lists the sites already on disk; after an interruption, the same command
    with --resume cuts FILE back to the last complete site and appends the rest. The progress file
    is removed when the export completes.
    """
    with _friendly_errors():
        request = ExportRequest(start, end, fmt, resolution)
    params = ExportParams(start.isoformat(), end.isoformat(), fmt, resolution, list(sites))
    services = cli.services()
    try:
        _export(services, request, params, sites, output, resume)
    finally:
        store.close(services.redis)


def _export(
    services: Services,
    request: ExportRequest,
    params: ExportParams,
    sites: tuple[int, ...],
    output: Path,
    resume: bool,
) -> None:
    with _friendly_errors():
        chosen = list(fleet_sites(services, sites)) if sites else None  # unknown --site: before writing
    log = ProgressLog(output)
    done, length = _resume_point(log, params, request) if resume else (set(), None)
    total = len(chosen) if chosen is not None else services.sites.count()
    with _open_output(output, length, request) as out:
        if length is None:  # a new file: its log starts once the header is on disk
            _sync(out)
            log.start(params)
        with _friendly_errors("Export failed: "):
            rows = _write_sites(services, request, chosen, done, out, log, total)
    log.remove()
    click.echo(f"Exported {total} sites ({rows:,} rows written now) to {output}", err=True)


def _resume_point(
    log: ProgressLog, params: ExportParams, request: ExportRequest
) -> tuple[set[int], int | None]:
    found = log.completed(params)
    if found is None:
        click.echo(f"Nothing to resume ({log.path} not found): starting afresh", err=True)
        return set(), None
    done, length = found
    return done, length if length is not None else len(header(request).encode())


def _open_output(output: Path, length: int | None, request: ExportRequest) -> IO[bytes]:
    """The output, cut to ``length`` bytes to resume, or created with its header."""
    if length is not None:
        resumed = output.open("r+b")
        resumed.truncate(length)
        resumed.seek(length)
        return resumed
    created = output.open("wb")
    created.write(header(request).encode())
    return created


def _write_sites(
    services: Services,
    request: ExportRequest,
    chosen: list[Site] | None,
    done: set[int],
    out: IO[bytes],
    log: ProgressLog,
    total: int,
) -> int:
    """Write every site not ``done``, logging each once on disk; returns the rows written."""
    rows = 0
    with click.progressbar(length=total, label="Sites", show_pos=True, file=sys.stderr) as bar:
        for site in _sites(services, chosen):
            if site.id not in done:
                rows += _write_site(services, site, request, out)
                log.record(site.id, out.tell())
            bar.update(1)
    return rows


def _write_site(services: Services, site: Site, request: ExportRequest, out: IO[bytes]) -> int:
    rows = 0
    for chunk in site_chunks(services, site, request, with_header=False):
        out.write(chunk.encode())
        rows += chunk.count("\n")
    _sync(out)
    return rows


def _sites(services: Services, chosen: list[Site] | None) -> Iterator[Site]:
    return iter(chosen) if chosen is not None else fleet_sites(services)


def _sync(out: IO[bytes]) -> None:
    out.flush()
    os.fsync(out.fileno())


main.add_command(export)
