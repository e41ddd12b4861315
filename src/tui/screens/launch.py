"""Launch: build a training or quantization run in a form, checked as you type, then submit.

The form becomes `key=value` overrides on top of an optional base YAML; the core config
checker validates them (in a worker: it looks at the disk) and the screen shows the problems,
the resulting YAML and the equivalent `tunedeck train|quantize` command. Submitting goes through
`tunedeck.core.runners.launch`, the path `tunedeck train` takes too. The host list is read afresh
whenever it can be seen (the screen shown again, the field focused): hosts added meanwhile appear.

Once a training config is valid, three checks before launch follow it, each in a worker and only
when what it depends on changed: the fit (peak GPU memory per device from the model's
config.json, judged against the host's GPUs or the GPU mem field: `tunedeck config fit`'s lines),
the template check and the datasets' check (rows dropped or truncated at cutoff_len; ctrl+o
opens the first such row in Preview). The last two load a tokenizer, so they run in a sidecar
process. Submitting with their problems is allowed: they are on screen.
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

from tunedeck.core.engines import BUILTIN, ENGINES
from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.pool import HostList
from tunedeck.core.jobs.store import human_bytes
from tunedeck.core.runners.inputs import SyncOptions
from tunedeck.core.runners.launch import PURPOSES, launch_run, rerun_command
from tunedeck.core.text import inert, inert_lines
from tunedeck.tui.messages import JobSubmitted, PreviewDataset
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.sidecar import SidecarClient

CHECK_DELAY = 0.25
HOST_GPUS_SECONDS = 60.0  # a host's GPUs, once probed, are trusted this long
SHOWN_SUGGESTIONS = 4
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
    Field("engine", "engine", ENGINES, BUILTIN),
    Field("gpu_mem", "GPU mem", placeholder="e.g. 24GiB (default: the host's GPUs)"),
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
    Field("engine", "engine", ENGINES, BUILTIN),
)
NOT_CONFIG_KEYS = {"config", "method", "host", "gpu_mem"}
MULTIPLE_KEYS = {f.key for f in (*TRAIN_FIELDS, *QUANTIZE_FIELDS) if f.multiple}


class LaunchScreen(DeckScreen):
    """Fill the form (Tab moves between fields); ctrl+s submits; problems show on the right."""

    MODE = "launch"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="launch.submit", priority=True),
        Binding("ctrl+w", "save_yaml", "Save YAML", id="launch.save"),
        Binding("ctrl+y", "copy_command", "Copy cmd", id="launch.copy"),
        Binding("ctrl+o", "open_row", "Open row", id="launch.open_row"),
        Binding("ctrl+b", "batches", "Batches", show=False, id="launch.batches"),
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
        self.fit: Any = None  # a FitReport, or the TunedeckError that stopped it
        self.template_probe: Any = None  # a TemplateProbe, or None (nothing to compare)
        self.data_check: Any = None  # a LaunchDataCheck, or the error that stopped it
        self._wanted: dict[str, tuple] = {}  # per follow-up check, the inputs last asked for
        self._shown: dict[str, tuple] = {}  # per follow-up check, the inputs of what is shown
        self._hidden = True  # the form is not a valid training config: no follow-up shown
        self._host_gpus: dict[str, tuple[float, list, str]] = {}
        self.base_engine = BUILTIN  # the engine the loaded base YAML names (the field's default)
        self._pool: Any = None
        self._sidecar = SidecarClient()

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="split"):
            with TabbedContent(id="launch-kind", classes="launch-form"):
                with TabPane("Train", id="train"):
                    yield from _form("train", TRAIN_FIELDS)
                with TabPane("Quantize", id="quantize"):
                    yield from _form("quantize", QUANTIZE_FIELDS)
            with VerticalScroll(id="launch-result", classes="right-pane"):
                yield Static("", id="launch-problems")
                yield Static("", id="launch-fit")
                yield Static("", id="launch-data")
                yield Static("", id="launch-sbatch")
                yield Static("", id="launch-command")
                yield Static("", id="launch-yaml")

    def on_mount(self) -> None:
        self.data_dir = Path(self.app.data_dir)
        follow_theme(self, self._recolour)
        self.load_choices()

    def _recolour(self) -> None:
        """Redraw the last checks in the new theme's colours."""
        if self.check is not None and self.checked_form is not None:
            self._show_problems()
        self._draw_panels()

    def on_screen_resume(self) -> None:
        self.load_hosts()

    def on_unmount(self) -> None:
        self._sidecar.close()
        if self._pool is not None:
            self._pool.close()

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
            if key == "engine" and value == self.base_engine:
                continue  # the base YAML's own engine (builtin without one): no override
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
        from tunedeck.core.config.launch_check import tokenizer_folder

        base = values.get("config")
        local = values.get("host", "local") == "local"
        try:
            check = check_config(base, overrides, purpose=PURPOSES[kind], check_files=local)
        except TunedeckError as error:
            check = error
        config = getattr(check, "config", None)
        folder = tokenizer_folder(config.model_name_or_path) if config is not None else None
        self.from_thread(self._show_check, kind, values, overrides, check, folder)

    def _show_check(
        self, kind: str, values: dict, overrides: list[str], check: Any, folder: Any = None
    ) -> None:
        """Show a config check; `folder` is the model's tokenizer folder, when it has one."""
        self.check = check
        self.checked_form = (kind, values, overrides)
        self._follow_up(kind, values, overrides, check, folder)
        self._ask_sbatch(kind, values, overrides, check)
        self._show_problems()
        command = Text("\ncommand\n", style="bold")
        command.append(inert(self.command_line(kind, values, overrides)) + "\n")
        self.query_one("#launch-command", Static).update(command)
        document = _config_document(check, overrides)
        body = Text("\nYAML\n", style="bold")
        body.append(
            inert_lines(yaml.safe_dump(document, sort_keys=False)) if document else "(empty)\n"
        )
        self.query_one("#launch-yaml", Static).update(body)

    # The sbatch script of a Slurm host ----------------------------------------------------

    def _ask_sbatch(self, kind: str, values: dict, overrides: list[str], check: Any) -> None:
        """Preview the sbatch script when the config is valid (off Slurm the panel stays empty)."""
        config = getattr(check, "config", None)
        if config is None:
            self._wanted.pop("sbatch", None)
            self.query_one("#launch-sbatch", Static).update("")
            return
        base, host = values.get("config"), values.get("host", "local")
        key = (kind, repr(config), host, base, tuple(overrides))
        if self._wanted.get("sbatch") != key:
            self._wanted["sbatch"] = key
            self.run_sbatch_preview(key, kind, config, host, base, overrides)

    @work(thread=True, exclusive=True, group="launch-sbatch", exit_on_error=False)
    def run_sbatch_preview(self, key: tuple, kind: str, config: Any, host: str, base, overrides):
        """The script core would submit on a Slurm host (None elsewhere)."""
        from tunedeck.core.runners.launch import launch_preview

        try:
            script: Any = launch_preview(
                kind, config, host=host, config_path=base, overrides=overrides if base else ()
            )
        except TunedeckError as error:
            script = error
        self.from_thread(self._show_sbatch, key, host, script)

    def _show_sbatch(self, key: tuple, host: str, script: Any) -> None:
        if self._wanted.get("sbatch") != key:
            return  # the form moved on
        panel = self.query_one("#launch-sbatch", Static)
        if script is None:
            panel.update("")
            return
        text = Text(f"\nsbatch script on {inert(host)}\n", style="bold")
        if isinstance(script, TunedeckError):
            text.append(inert(str(script)) + "\n", style=Palette.of(self.app).colour("failed"))
        else:
            text.append(inert_lines(script))
        panel.update(text)

    def _show_problems(self) -> None:
        """The config check's problems, the template warning among them."""
        from tunedeck.core.config.checks import template_warning

        check, palette = self.check, Palette.of(self.app)
        extra = []
        if self.template_probe is not None and self._current("probe") and not self._hidden:
            warning = template_warning(self.template_probe)
            extra = [warning] if warning is not None else []
        self.query_one("#launch-problems", Static).update(_problems_text(check, palette, extra))

    def _current(self, name: str) -> bool:
        """Whether what is shown for a follow-up check answers what the form asks now."""
        return name in self._wanted and self._shown.get(name) == self._wanted[name]

    # Checks before launch: fit, template, datasets ------------------------------------------

    def _follow_up(
        self, kind: str, values: dict, overrides: list[str], check: Any, folder: Any
    ) -> None:
        """Start the checks whose inputs changed since they last ran (train configs only)."""
        config = getattr(check, "config", None)
        self._hidden = kind != "train" or config is None  # what was found stays, unshown
        if self._hidden:
            self.query_one("#launch-fit", Static).update("")
            self.query_one("#launch-data", Static).update("")
            return
        base, host = values.get("config"), values.get("host", "local")
        fit_key = (repr(config), host, values.get("gpu_mem", ""), base)
        if self._wanted.get("fit") != fit_key:
            self._wanted["fit"] = fit_key
            self.run_fit(fit_key, config, host, values.get("gpu_mem"), base, overrides)
        probe_key = (str(folder), config.template)
        if folder is None:
            self._wanted.pop("probe", None)
            self.template_probe = None
        elif self._wanted.get("probe") != probe_key:
            self._wanted["probe"] = probe_key
            self.run_probe(probe_key, str(folder), config.template)
        data_key = (
            config.datasets,
            config.dataset_dir,
            str(folder),
            config.template,
            config.cutoff_len,
            config.mask_history,
        )
        if not config.datasets:
            self._wanted.pop("data", None)
            self.query_one("#launch-data", Static).update("")
        elif self._wanted.get("data") != data_key:
            self._wanted["data"] = data_key
            self._show_data_progress("checking the datasets…")
            self.run_data_check(data_key, config)
        self._draw_panels()  # the checks that did not need to run again

    def _draw_panels(self) -> None:
        """The fit and datasets panels from what their checks found for the form as it is."""
        if self._hidden:
            return
        palette = Palette.of(self.app)
        if self.fit is not None and self._current("fit"):
            self.query_one("#launch-fit", Static).update(_fit_text(self.fit, palette))
        if self.data_check is not None and self._current("data"):
            self.query_one("#launch-data", Static).update(_data_text(self.data_check, palette))

    @work(thread=True, exclusive=True, group="launch-fit", exit_on_error=False)
    def run_fit(
        self, key: tuple, config: Any, host: str, gpu_mem: str | None, base, overrides
    ) -> None:
        """The fit of the config on the host's GPUs (or on one GPU of `gpu_mem`)."""
        from tunedeck.core.config import fit

        try:
            shape_path = fit.model_config_path(config.model_name_or_path, None, base)
            shape = fit.load_model_shape(shape_path)
            zero_stage, notes = fit.deepspeed_stage(base, overrides) if base else (0, ())
            gpus, source = self._gpus_to_judge(host, gpu_mem)
            report: Any = fit.fit_run_config(
                config,
                shape,
                zero_stage=zero_stage,
                gpus=gpus,
                gpu_source=source,
                model=str(shape_path),
                notes=notes,
            )
        except TunedeckError as error:
            report = error
        self.from_thread(self._show_fit, key, report)

    def _gpus_to_judge(self, host: str, gpu_mem: str | None) -> tuple[list, str]:
        """The GPU mem field's one GPU, else the host's GPUs as its probe reports them."""
        from tunedeck.core.config.fit import gpus_of, gpus_to_judge

        if gpu_mem:
            return gpus_to_judge(gpu_mem=gpu_mem)
        known = self._host_gpus.get(host)
        if known is not None and time.monotonic() - known[0] < HOST_GPUS_SECONDS:
            return known[1], known[2]
        if self._pool is None:
            from tunedeck.core.jobs.pool import BackendPool

            self._pool = BackendPool()
        probe = self._pool.probe(host)
        source = "this machine" if host == "local" else f"host {host}"
        if not probe.reachable:
            source += f" (unreachable: {probe.error})"
        found = (time.monotonic(), gpus_of(probe.gpus), source)
        self._host_gpus[host] = found
        return found[1], found[2]

    def _show_fit(self, key: tuple, report: Any) -> None:
        if self._wanted.get("fit") != key:
            return  # the form moved on: a newer fit is coming
        self.fit = report
        self._shown["fit"] = key
        self._draw_panels()

    @work(thread=True, exclusive=True, group="launch-probe", exit_on_error=False)
    def run_probe(self, key: tuple, folder: str, template: str | None) -> None:
        """The template check in the sidecar (it loads the tokenizer)."""
        try:
            probe: Any = self._sidecar.template_probe(folder, template)
        except TunedeckError as error:
            self.from_thread(self.notify, inert(str(error)), title="Template check", markup=False)
            probe = None
        self.from_thread(self._show_probe, key, probe)

    def _show_probe(self, key: tuple, probe: Any) -> None:
        if self._wanted.get("probe") != key:
            return
        self.template_probe = probe
        self._shown["probe"] = key
        self._show_problems()

    @work(thread=True, exclusive=True, group="launch-data", exit_on_error=False)
    def run_data_check(self, key: tuple, config: Any) -> None:
        """The datasets' check in the sidecar, its progress on the way."""
        check: Any = None
        try:
            for item in self._sidecar.launch_data(config.to_dict()):
                if isinstance(item, tuple):
                    self.from_thread(self._show_data_step, key, item)
                else:
                    check = item
        except TunedeckError as error:
            check = error
        self.from_thread(self._show_data, key, check)

    def _show_data_step(self, key: tuple, step: tuple) -> None:
        if self._wanted.get("data") != key or self._hidden:
            return
        stage, name, done, total = step
        if stage == "validate" and total:
            line = f"checking {name}: {human_bytes(done)} of {human_bytes(total)}"
        else:
            line = f"measuring {name}: {done:,} rows"
        self._show_data_progress(line + "…")

    def _show_data_progress(self, line: str) -> None:
        text = Text("\ndatasets\n", style="bold")
        text.append(inert(line) + "\n", style="dim")
        self.query_one("#launch-data", Static).update(text)

    def _show_data(self, key: tuple, check: Any) -> None:
        if self._wanted.get("data") != key:
            return
        self.data_check = check
        self._shown["data"] = key
        self._draw_panels()

    def action_open_row(self) -> None:
        """Open the first dropped (else truncated) row of the datasets' check in Preview."""
        check = self.data_check
        first = None if check is None or isinstance(check, Exception) else check.first_row()
        if first is None or not self._current("data") or self._hidden:
            self.notify("no dropped or truncated row to open", severity="warning")
            return
        dataset, row, _why = first
        self.app.hand_over(
            "preview",
            PreviewDataset(
                dataset,
                row=row,
                template=check.template,
                tokenizer=check.tokenizer,
                cutoff_len=check.cutoff_len,
            ),
        )

    def action_batches(self) -> None:
        """The first training batches of the form's base YAML (the Batches view)."""
        from tunedeck.tui.screens.batches import open_batches

        open_batches(self.app, self.values("train").get("config"))

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
        from tunedeck.tui.screens.batches import remember_config

        if event.value.strip():
            remember_config(event.value.strip())
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
        engine = document.get("engine", BUILTIN)
        self.base_engine = engine if engine in ENGINES else BUILTIN
        self.query_one("#train-engine", Select).value = self.base_engine
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
        self.from_thread(self.notify, f"{kind} job {job.id} started on {job.host}{self._caveat()}")
        self.from_thread(self.post_message, JobSubmitted(job.id))

    def _caveat(self) -> str:
        """What the checks before launch found, said again when a run starts anyway."""
        check = self.data_check
        if check is None or isinstance(check, Exception) or not self._current("data"):
            return ""
        said = []
        if check.dropped:
            said.append(f"{check.dropped:,} rows dropped")
        if check.truncated:
            said.append(f"{check.truncated:,} rows truncated at cutoff_len {check.cutoff_len}")
        return f" ({', '.join(said)})" if said else ""

    def ask_from_worker(self, question: str) -> bool:
        """Ask a yes/no question in a dialog from a worker thread; wait for the answer. No
        answer counts as no once the screen or the app is gone (the worker must not outlive it)."""
        answered = threading.Event()
        answer: list[bool] = []

        def done(yes: bool | None) -> None:
            answer.append(bool(yes))
            answered.set()

        dialog = ConfirmScreen(question, "it is sent once; later runs reuse it", yes="Send")
        self.from_thread(self.app.push_screen, dialog, done)
        while not answered.wait(0.25):
            if not (self.is_attached and self.app.is_running):
                return False
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


def _problems_text(check: Any, palette: Palette, extra: list | None = None) -> Text:
    """A config check (and `extra` problems, the template check's): each problem marked, in
    the error or warning colour, or the all-clear."""
    problems = Text()
    if isinstance(check, Exception):
        problems.append(f"✗ {inert(str(check))}\n", style=palette.style("error", "bold"))
    elif check.ok and not check.warnings and not extra:
        problems.append("✓ config is valid\n", style=palette.style("ok", "bold"))
    else:
        for problem in (*check.problems, *(extra or ())):
            style = palette.style("error" if problem.severity == "error" else "warning")
            mark = "✗" if problem.severity == "error" else "!"
            problems.append(f"{mark} {inert(problem.key or '')}: ", style=f"bold {style}")
            problems.append(f"{inert(problem.message)}\n", style=style)
            if problem.hint:
                problems.append(f"  hint: {inert(problem.hint)}\n", style="dim")
        if check.ok:
            problems.append("✓ valid (with warnings)\n", style=palette.style("ok"))
    return problems


def _fit_text(report: Any, palette: Palette) -> Text:
    """The fit panel: `tunedeck config fit`'s lines, the verdicts in their colours."""
    from tunedeck.tui.commands.config import fit_lines

    text = Text("\nfit (peak GPU memory per device)\n", style="bold")
    if isinstance(report, Exception):
        text.append(f"{inert(str(report))}\n", style="dim")
        return text
    colours = {"fits": "ok", "tight": "warning", "does not fit": "error"}
    no_gpu = f"no GPU known for {report.gpu_source or 'this host'}: fill GPU mem (e.g. 80GiB)"
    lines = fit_lines(report, no_gpu, parts=False)
    changes = [line for line in lines if line.change]
    for line in lines:
        if line in changes[SHOWN_SUGGESTIONS:]:
            continue
        if line.verdict:
            verdict_style = palette.style(colours[line.verdict], "bold")
            text.append(f"{line.verdict:<13}", style=verdict_style)
        text.append(inert(line.text) + "\n", style=line.style)
    if len(changes) > SHOWN_SUGGESTIONS:
        more = len(changes) - SHOWN_SUGGESTIONS
        text.append(f"  … {more} more: tunedeck config fit\n", style="dim")
    return text


def _data_text(check: Any, palette: Palette) -> Text:
    """The datasets' check: rows dropped and truncated per dataset, and the key to open one."""
    text = Text("\ndatasets\n", style="bold")
    if isinstance(check, Exception):
        text.append(f"not checked here: {inert(str(check))}\n", style="dim")
        return text
    if check is None:
        return text
    for one in check.datasets:
        text.append(f"{inert(one.dataset)}: ", style="bold")
        if one.error:
            text.append(f"{inert(one.error)}\n", style=palette.style("error"))
            continue
        text.append(f"{one.rows or 0:,} rows, ")
        text.append(
            f"{one.dropped:,} dropped",
            style=palette.style("error") if one.dropped else palette.style("ok"),
        )
        if one.truncated is None:
            text.append(", truncation not counted (no tokenizer)\n", style="dim")
            continue
        text.append(", ")
        text.append(
            f"{one.truncated:,} truncated at {check.cutoff_len}",
            style=palette.style("warning") if one.truncated else palette.style("ok"),
        )
        text.append(f" (longest {one.longest or 0:,} tokens)\n", style="dim")
    first = check.first_row()
    if first is not None:
        dataset, row, why = first
        text.append(
            f"ctrl+o opens sample {row + 1} ({why}) of {inert(dataset)} in Preview\n", style="dim"
        )
    return text


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
