"""The ``flawscope watch`` command: inspect every new image in a folder, with alerts on fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the CLI app."""
    app.command()(watch)


def watch(
    folder: Annotated[
        Path, typer.Argument(help="Folder the images arrive in (watched recursively).")
    ],
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `flawscope fit`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for results.csv and anomaly-map PNGs.")
    ] = Path("flawscope-results"),
    db: Annotated[
        str | None,
        typer.Option(
            help="Results store, a SQLite file or a postgresql:// URL (default: results.db in "
            "--out). It is the watcher's memory: images whose content it holds for this model "
            "and batch are never inspected again, across restarts."
        ),
    ] = None,
    batch: Annotated[
        str, typer.Option(help="Production batch (lot) recorded with every image, for SPC.")
    ] = "",
    settle: Annotated[
        float,
        typer.Option(
            help="Seconds a file's size and modification time must stay unchanged before it "
            "is inspected (it must also decode)."
        ),
    ] = 1.0,
    maps: Annotated[bool, typer.Option(help="Write anomaly-map overlay PNGs.")] = True,
    webhook: Annotated[
        str | None,
        typer.Option(
            help="On a fail, POST the result as JSON (verdict, score, threshold, path, group, "
            "batch, model_id, time) to this http(s) URL."
        ),
    ] = None,
    octoprint_url: Annotated[
        str | None,
        typer.Option(help="On a fail, pause the print job of this OctoPrint server."),
    ] = None,
    octoprint_key: Annotated[
        str | None,
        typer.Option(
            envvar="FLAWSCOPE_OCTOPRINT_KEY",
            help="OctoPrint API key (or set FLAWSCOPE_OCTOPRINT_KEY, which keeps it out of "
            "the process list).",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Inspect the images there now (once they settle) and exit; for cron."
        ),
    ] = False,
) -> None:
    """Inspect every new image in FOLDER exactly once, as soon as it is completely written.

    Images already there are inspected at start unless the results store holds them; results go
    to results.csv and the store as with `flawscope inspect`. Alerts (--webhook, --octoprint-url)
    are sent for fails, after the result is recorded; an alert that fails is a warning only.
    Stop with Ctrl-C or SIGTERM: the images being inspected are finished first.

    With --once, exits with status 1 when some files could not be read.
    """
    from rich.console import Console

    from flawscope.errors import ConfigError, DataError, FlawscopeError, ModelDirError
    from flawscope.service.alerts import Alert, OctoPrintPause, Webhook

    console = Console(soft_wrap=True, highlight=False)
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"watch folder {folder} {state}", "check the path, or create the folder")
    if not model_dir.is_dir():  # checked here too: loading the model imports torch (seconds)
        raise ModelDirError(
            f"model directory {model_dir} does not exist", "train one with `flawscope fit`"
        )
    if not settle > 0:
        raise ConfigError(f"--settle {settle} is not a positive number of seconds", "use e.g. 1.0")
    if (octoprint_url is None) != (octoprint_key is None):
        raise ConfigError(
            "--octoprint-url and --octoprint-key go together",
            "pass both (the key may come from FLAWSCOPE_OCTOPRINT_KEY)",
        )
    hook = Webhook(webhook) if webhook else None  # bad URLs fail before the model loads
    alerts: list[Alert] = [hook] if hook else []
    if octoprint_url and octoprint_key:
        alerts.append(OctoPrintPause(octoprint_url, octoprint_key))

    from flawscope.inspection import Outcome
    from flawscope.inspector import Inspector
    from flawscope.service.watch import Watcher
    from flawscope.store import ResultStore

    insp = Inspector.load_dir(model_dir)
    if hook:
        hook.model_id = insp.model_id
    if insp.config.groups.source == "manifest":
        raise FlawscopeError(
            "this model keeps thresholds per manifest group, which watch cannot know for new "
            "images",
            "fit the model with --group-by pattern or discover to watch a folder",
        )

    def show(o: Outcome) -> None:
        colour = "red" if o.verdict == "fail" else "green"
        notes = [f"group {o.group}"] if o.group else []
        notes += ["far from all groups"] * o.far
        extra = f"  ({', '.join(notes)})" if notes else ""
        console.print(f"[{colour}]{o.verdict:4}[/] {o.score:10.4g}  {o.sample.path}{extra}")

    with ResultStore(db or out / "results.db") as store:
        watcher = Watcher(
            insp,
            folder,
            out,
            store,
            batch=batch,
            maps=maps,
            settle_s=settle,
            alerts=alerts,
            on_result=show,
        )
        if not once:
            console.print(
                f"watching [bold]{watcher.folder}[/] with model {insp.model_id or model_dir}; "
                f"results in {out / 'results.csv'} and {store.url}"
                + (f"; alerts: {', '.join(a.name for a in alerts)}" if alerts else "")
                + " (Ctrl-C stops)"
            )
        s = watcher.run(once=once)
    console.print(
        f"{s.n_inspected} inspected: {s.n_pass} pass, {s.n_fail} fail"
        + (f", {s.n_known} already in the store" if s.n_known else "")
        + (f", {len(s.unreadable)} unreadable" if s.unreadable else "")
        + (f", {s.alerts_failed} alert(s) not sent" if s.alerts_failed else "")
    )
    if once and s.unreadable:
        raise typer.Exit(1)
