"""Launch: build a training or quantization run in a form, checked as you type, then submit.

The form becomes `key=value` overrides on top of an optional base YAML; the core config
checker validates them (in a worker: it looks at the disk) and the screen shows the problems,
the resulting YAML and the equivalent `tunedeck train|quantize` command. Submitting goes through
`tunedeck.core.runners.launch`, the path `tunedeck train` takes too. The host list is read afresh
whenever it can be seen (the screen shown again, the field focused): hosts added meanwhile appear.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.suggester import Suggester
from textual.widgets import Input, Label, Select, Static, TabbedContent, TabPane

from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.pool import HostList
from tunedeck.core.jobs.store import human_bytes
from tunedeck.core.runners.inputs import SyncOptions
from tunedeck.core.runners.launch import PURPOSES, launch_run, rerun_command
from tunedeck.core.text import inert, inert_lines
from tunedeck.tui.messages import JobSubmitted
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.screens.confirm import ConfirmScreen

CHECK_DELAY = 0.25
METHODS = {"lora": "LoRA", "qlora4": "QLoRA 4-bit", "full": "full"}


@dataclass(frozen=True)
class Field:
    """One form row: a config key, its label, and choices (a Select) or free text (an Input).

    A `multiple` field is free text holding a comma list; its named choices complete each item.
    """

    key: str
    label: str
    choices: tuple[str, ...] | str | None = None  # a tuple, or a name filled at mount
    default: str = ""
    placeholder: str = ""
    multiple: bool = False


TRAIN_FIELDS = (
    Field("config", "base YAML", placeholder="optional: path/to/run.yaml (Enter loads it)"),
    Field("dataset", "dataset", "datasets", placeholder="names, comma separated", multiple=True),
    Field("dataset_dir", "data dir", placeholder="the app's data folder"),
    Field("model_name_or_path", "model path", placeholder="path/to/model"),
    Field("template", "template", "templates", "default"),
    Field("method", "method", tuple(METHODS), "lora"),
    Field("stage", "stage", ("sft", "pt", "dpo", "kto"), "sft"),
    Field("lora_rank", "lora_rank", None, "8"),
    Field("learning_rate", "learning_rate", None, "1e-4"),
    Field("num_train_epochs", "epochs", None, "3"),
    Field("max_steps", "max_steps", placeholder="-1: the epochs decide"),
    Field("max_samples", "max_samples", placeholder="default: every row"),
    Field("cutoff_len", "cutoff_len", None, "1024"),
    Field("per_device_train_batch_size", "batch size", None, "2"),
    Field("gradient_accumulation_steps", "grad accum", None, "4"),
    Field("logging_steps", "logging_steps", placeholder="default: 10"),
    Field("save_steps", "save_steps", placeholder="default: 500"),
    Field("output_dir", "output_dir", placeholder="output/my-run"),
    Field("host", "host", "hosts", "local"),
)
QUANTIZE_FIELDS = (
    Field("model_name_or_path", "model path", placeholder="path/to/model"),
    Field("adapter_name_or_path", "adapter", placeholder="optional: a LoRA output_dir"),
    Field("export_dir", "export_dir", placeholder="output/model-gptq"),
    Field("export_quantization_bit", "GPTQ bits", ("4", "8", "3", "2"), "4"),
    Field("export_quantization_dataset", "calibration", "datasets"),
    Field("export_quantization_nsamples", "nsamples", None, "128"),
    Field("export_quantization_maxlen", "maxlen", None, "1024"),
    Field("template", "template", "templates", "default"),
    Field("host", "host", "hosts", "local"),
)
NOT_CONFIG_KEYS = {"config", "method", "host"}
MULTIPLE_KEYS = {f.key for f in (*TRAIN_FIELDS, *QUANTIZE_FIELDS) if f.multiple}


class LaunchScreen(DeckScreen):
    """Fill the form (Tab moves between fields); ctrl+s submits; problems show on the right."""

    MODE = "launch"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="launch.submit", priority=True),
        Binding("ctrl+w", "save_yaml", "Save YAML", id="launch.save"),
        Binding("ctrl+y", "copy_command", "Copy cmd", id="launch.copy"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.choices: dict[str, list[str]] = {"datasets": [], "templates": [], "hosts": []}
        self.data_dir: Path | None = None
        self.check: Any = None
        self.checked_form: tuple[str, dict[str, str], list[str]] | None = None  # what `check` saw
        self.host_list = HostList()  # re-reads hosts.toml only when it changed
        self._timer = None
        self._loading = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="split"):
            with TabbedContent(id="launch-kind", classes="launch-form"):
                with TabPane("Train", id="train"):
                    yield from _form("train", TRAIN_FIELDS)
                with TabPane("Quantize", id="quantize"):
                    yield from _form("quantize", QUANTIZE_FIELDS)
            with VerticalScroll(id="launch-result", classes="right-pane"):
                yield Static("", id="launch-problems")
                yield Static("", id="launch-command")
                yield Static("", id="launch-yaml")

    def on_mount(self) -> None:
        self.data_dir = Path(self.app.data_dir)
        follow_theme(self, self._recolour)
        self.load_choices()

    def _recolour(self) -> None:
        """Redraw the last check in the new theme's colours."""
        if self.check is not None and self.checked_form is not None:
            self._show_check(*self.checked_form, self.check)

    def on_screen_resume(self) -> None:
        self.load_hosts()

    @on(DescendantFocus)
    def _field_focused(self, event: DescendantFocus) -> None:
        if (event.widget.id or "").endswith("-host"):
            self.load_hosts()

    @work(thread=True, exclusive=True, group="launch-hosts")
    def load_hosts(self) -> None:
        """The hosts as hosts.toml says now: one added from a shell shows up when next seen."""
        try:
            hosts = ["local", *sorted(self.host_list.current())]
        except TunedeckError as error:  # an unreadable hosts.toml: say so, offer this box
            self.from_thread(self.notify, str(error), title="Hosts", severity="warning")
            hosts = ["local"]
        if hosts != self.choices["hosts"]:
            self.from_thread(self._fill_hosts, hosts)

    def _fill_hosts(self, hosts: list[str]) -> None:
        self.choices = {**self.choices, "hosts": hosts}
        self._loading = True
        for kind in ("train", "quantize"):
            select = self.query_one(f"#{kind}-host", Select)
            chosen = select.value
            select.set_options([(name, name) for name in hosts])
            select.value = chosen if chosen in hosts else "local"
        self._loading = False

    @work(thread=True, exclusive=True, group="launch-choices")
    def load_choices(self) -> None:
        choices: dict[str, list[str]] = {"datasets": [], "templates": []}
        try:
            from tunedeck.core.datasets import load_dataset_info

            info = load_dataset_info(self.app.data_dir)
            choices["datasets"] = [n for n, s in info.specs.items() if s.is_local]
            self.data_dir = info.data_dir
        except Exception:  # no data folder: the field stays free of choices, checks say why
            pass
        try:
            from tunedeck.core.templates import TEMPLATES

            choices["templates"] = sorted(TEMPLATES)
        except ImportError:
            pass
        self.from_thread(self._fill_choices, choices)

    def _fill_choices(self, choices: dict[str, list[str]]) -> None:
        self.choices = {**choices, "hosts": self.choices["hosts"]}  # load_hosts keeps those
        self._loading = True
        for kind, fields in (("train", TRAIN_FIELDS), ("quantize", QUANTIZE_FIELDS)):
            for field in fields:
                if field.multiple:
                    names = tuple(choices.get(str(field.choices), []))
                    self.query_one(f"#{kind}-{field.key}", Input).suggester.names = names
                elif isinstance(field.choices, str) and field.choices != "hosts":
                    select = self.query_one(f"#{kind}-{field.key}", Select)
                    options = choices.get(field.choices, [])
                    select.set_options([(o, o) for o in options])
                    if field.default in options:
                        select.value = field.default
                    elif options:
                        select.value = options[0]
        self._loading = False
        self._schedule_check()

    # Form -> overrides -> check -------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.query_one("#launch-kind", TabbedContent).active or "train"

    def values(self, kind: str | None = None) -> dict[str, str]:
        """The non-empty form values of one form, by key."""
        kind = kind or self.kind
        values: dict[str, str] = {}
        for field in TRAIN_FIELDS if kind == "train" else QUANTIZE_FIELDS:
            value = self.query_one(f"#{kind}-{field.key}").value
            if value is not None and value is not Select.NULL and str(value).strip():
                values[field.key] = str(value).strip()
        return values

    def overrides(self, values: dict[str, str], kind: str) -> list[str]:
        """`key=value` overrides for the config checker (values parsed as YAML there)."""
        items: dict[str, str] = {}
        for key, value in values.items():
            if key not in NOT_CONFIG_KEYS:
                items[key] = _comma_list(value) if key in MULTIPLE_KEYS else value
        if kind == "train":
            method = values.get("method", "lora")
            items["finetuning_type"] = "full" if method == "full" else "lora"
            if method == "qlora4":
                items["quantization_bit"] = "4"
            if method == "full":
                items.pop("lora_rank", None)
        if self.data_dir is not None and not values.get("config"):
            items.setdefault("dataset_dir", str(self.data_dir))
        return [f"{key}={_yaml_scalar(value)}" for key, value in items.items()]

    @on(Input.Changed)
    @on(Select.Changed)
    @on(TabbedContent.TabActivated, "#launch-kind")
    def _changed(self) -> None:
        if not self._loading:
            self._schedule_check()

    def _schedule_check(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DELAY, self._check_now)

    def _check_now(self) -> None:
        kind = self.kind
        values = self.values(kind)
        self.run_check(kind, values, self.overrides(values, kind))

    @work(thread=True, exclusive=True, group="launch-check")
    def run_check(self, kind: str, values: dict[str, str], overrides: list[str]) -> None:
        from tunedeck.core.config import check_config

        base = values.get("config")
        local = values.get("host", "local") == "local"
        try:
            check = check_config(base, overrides, purpose=PURPOSES[kind], check_files=local)
        except TunedeckError as error:
            check = error
        self.from_thread(self._show_check, kind, values, overrides, check)

    def _show_check(self, kind: str, values: dict, overrides: list[str], check: Any) -> None:
        self.check = check
        self.checked_form = (kind, values, overrides)
        problems = _problems_text(check, Palette.of(self.app))
        self.query_one("#launch-problems", Static).update(problems)
        command = Text("\ncommand\n", style="bold")
        command.append(inert(self.command_line(kind, values, overrides)) + "\n")
        self.query_one("#launch-command", Static).update(command)
        document = _config_document(check, overrides)
        body = Text("\nYAML\n", style="bold")
        body.append(
            inert_lines(yaml.safe_dump(document, sort_keys=False)) if document else "(empty)\n"
        )
        self.query_one("#launch-yaml", Static).update(body)

    def command_line(self, kind: str, values: dict, overrides: list[str]) -> str:
        base = values.get("config")
        text = rerun_command(
            kind, base or "run.yaml", overrides if base else [], values.get("host")
        )
        if not base:
            text += "    # run.yaml: the YAML below (ctrl+w saves it)"
        return text

    # Loading a base YAML ------------------------------------------------------------------------

    @on(Input.Submitted, "#train-config")
    def _load_base(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.load_base(event.value.strip())

    @work(thread=True, exclusive=True, group="launch-base")
    def load_base(self, path: str) -> None:
        """Read a YAML run config into the form (as written: it may still be incomplete)."""
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            self.from_thread(self.notify, f"{path}: {error}", severity="error")
            return
        if not isinstance(document, dict):
            self.from_thread(self.notify, f"{path}: not a mapping of keys", severity="error")
            return
        self.from_thread(self._fill_from_document, document)

    def _fill_from_document(self, document: dict) -> None:
        self._loading = True
        for field in TRAIN_FIELDS:
            value = document.get(field.key)
            if field.key in NOT_CONFIG_KEYS or value is None:
                continue
            widget = self.query_one(f"#train-{field.key}")
            if isinstance(widget, Select):
                options = [str(v) for _, v in widget._options if v is not Select.NULL]
                if str(value) in options:
                    widget.value = str(value)
            else:
                widget.value = str(value)
        finetuning = document.get("finetuning_type", "lora")
        quantized = document.get("quantization_bit") == 4
        method = "full" if finetuning == "full" else ("qlora4" if quantized else "lora")
        self.query_one("#train-method", Select).value = method
        self._loading = False
        self.notify("base YAML loaded into the form")
        self._schedule_check()

    # Actions -----------------------------------------------------------------------------------

    def action_save_yaml(self) -> None:
        document = _config_document(self.check, [])
        if not document:
            self.notify("nothing valid to save yet", severity="warning")
            return
        path = (
            Path("run.yaml") if not self.values().get("config") else Path(self.values()["config"])
        )
        if path.exists() and self.values().get("config") != str(path):
            path = Path(f"run-{time.strftime('%Y%m%d-%H%M%S')}.yaml")
        self.write_yaml(path, yaml.safe_dump(document, sort_keys=False))

    @work(thread=True, group="launch-save")
    def write_yaml(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        self.from_thread(self.notify, f"wrote {path}")

    def action_copy_command(self) -> None:
        kind = self.kind
        values = self.values(kind)
        command = self.command_line(kind, values, self.overrides(values, kind))
        self.app.copy_to_clipboard(command.split("    #")[0])
        self.notify(command, title="Command copied")

    def action_submit(self) -> None:
        check = self.check
        if check is None or isinstance(check, Exception) or not check.ok or check.config is None:
            self.notify("fix the problems on the right first", severity="error")
            return
        kind, values, overrides = self.checked_form
        self.submit_run(kind, values, overrides, check.config)

    @work(thread=True, exclusive=True, group="launch-submit", exit_on_error=False)
    def submit_run(self, kind: str, values: dict, overrides: list[str], config: Any) -> None:
        """Start the run the way `tunedeck train|quantize` does (the form's base YAML and
        overrides are its command line; without a base YAML, its snapshot)."""
        base = values.get("config")
        host = values.get("host", "local")
        sync = SyncOptions(
            confirm=self.ask_from_worker,
            on_progress=self.sync_progress,
            report=lambda line: self.from_thread(self.notify, line, title=f"Sent to {host}"),
        )
        try:
            job = launch_run(
                kind,
                config,
                host=host,
                config_path=base,
                overrides=overrides if base else (),
                sync=None if host == "local" else sync,
            )
        except TunedeckError as error:
            self.from_thread(self.notify, str(error), title="Submit failed", severity="error")
            return
        self.from_thread(self.notify, f"{kind} job {job.id} started on {job.host}")
        self.from_thread(self.post_message, JobSubmitted(job.id))

    def ask_from_worker(self, question: str) -> bool:
        """Ask a yes/no question in a dialog from a worker thread; wait for the answer."""
        answered = threading.Event()
        answer: list[bool] = []

        def done(yes: bool | None) -> None:
            answer.append(bool(yes))
            answered.set()

        dialog = ConfirmScreen(question, "it is sent once; later runs reuse it", yes="Send")
        self.app.call_from_thread(self.app.push_screen, dialog, done)
        answered.wait()
        return answer[0]

    def sync_progress(self, progress: Any) -> None:
        """Say how far a send to the host is, at most once a second while it lasts."""
        now = time.monotonic()
        if (
            now - getattr(self, "_sync_said", 0.0) < 1.0
            or progress.bytes_done >= progress.bytes_total
        ):
            return
        self._sync_said = now
        line = (
            f"sending {progress.files_done}/{progress.files_total} files, "
            f"{human_bytes(progress.bytes_done)} of {human_bytes(progress.bytes_total)}"
        )
        self.from_thread(self.notify, line, timeout=1.5)


def _form(kind: str, fields: tuple[Field, ...]) -> ComposeResult:
    with VerticalScroll(classes="form"):
        for field in fields:
            with Horizontal(classes="form-row"):
                yield Label(field.label)
                widget_id = f"{kind}-{field.key}"
                if field.multiple:
                    yield Input(
                        field.default,
                        placeholder=field.placeholder,
                        id=widget_id,
                        compact=True,
                        suggester=CommaListSuggester(),
                    )
                elif field.choices is None:
                    yield Input(
                        field.default, placeholder=field.placeholder, id=widget_id, compact=True
                    )
                elif isinstance(field.choices, tuple):
                    labels = METHODS if field.key == "method" else {}
                    options = [(labels.get(c, c), c) for c in field.choices]
                    yield Select(
                        options, value=field.default, id=widget_id, compact=True, allow_blank=False
                    )
                else:
                    yield Select([], prompt=field.label, id=widget_id, compact=True)
        yield Vertical(classes="form-end")


def _problems_text(check: Any, palette: Palette) -> Text:
    """A config check: each problem marked, in the error or warning colour, or the all-clear."""
    problems = Text()
    if isinstance(check, Exception):
        problems.append(f"✗ {inert(check)}\n", style=palette.style("error", "bold"))
    elif check.ok and not check.warnings:
        problems.append("✓ config is valid\n", style=palette.style("ok", "bold"))
    else:
        for problem in check.problems:
            style = palette.style("error" if problem.severity == "error" else "warning")
            mark = "✗" if problem.severity == "error" else "!"
            problems.append(f"{mark} {inert(problem.key or '')}: ", style=f"bold {style}")
            problems.append(f"{inert(problem.message)}\n", style=style)
            if problem.hint:
                problems.append(f"  hint: {inert(problem.hint)}\n", style="dim")
        if check.ok:
            problems.append("✓ valid (with warnings)\n", style=palette.style("ok"))
    return problems


class CommaListSuggester(Suggester):
    """Completes the last name of a comma list (`demo_alpaca,demo_s` -> `...demo_sharegpt`)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.names: tuple[str, ...] = ()  # filled once the choices are loaded

    async def get_suggestion(self, value: str) -> str | None:
        typed = value.rpartition(",")[2].lstrip()
        if not typed:
            return None
        for name in self.names:
            if name.startswith(typed) and name != typed:
                return value + name[len(typed) :]
        return None


def _comma_list(value: str) -> str:
    """`a, b,,c ` as `a,b,c`: the form of LLaMA-Factory's dataset lists."""
    return ",".join(part.strip() for part in value.split(",") if part.strip())


def _yaml_scalar(value: str) -> str:
    """Quote a form value so YAML reads it back as the same string when it is not a number."""
    try:
        float(value)
        return value
    except ValueError:
        pass
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, (int, float, bool)) or parsed is None and value in ("null", "~"):
        return value
    return json.dumps(value)


def _config_document(check: Any, overrides: list[str]) -> dict:
    if check is not None and not isinstance(check, Exception) and check.config is not None:
        return check.config.changed()
    document = {}
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            document[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            document[key] = value
    return document


SCREEN = LaunchScreen
