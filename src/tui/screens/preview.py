"""Preview: one dataset row rendered by a template, as training sees it; a length histogram.

Without a tokenizer the rendering runs here (segments only). With a tokenizer dir, token
ids, labels and truncation come from a sidecar process, so this process never imports
transformers.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Input, Label, Select, Static

from tunedeck.tui.messages import PreviewDataset
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.sidecar import SidecarClient
from tunedeck.tui.widgets.conversation_text import rendered_text
from tunedeck.tui.widgets.histogram import Histogram

DEFAULT_TEMPLATE = "default"
LENGTH_SAMPLE = 2000


class PreviewScreen(DeckScreen):
    """Pick dataset, template, tokenizer, cutoff_len; step through samples with [ and ]."""

    MODE = "preview"
    BINDINGS = [
        Binding(
            "right_square_bracket,ctrl+n", "step(1)", "Next", key_display="]", id="preview.next"
        ),
        Binding(
            "left_square_bracket,ctrl+b", "step(-1)", "Prev", key_display="[", id="preview.prev"
        ),
        Binding("ctrl+l", "lengths", "Lengths", id="preview.lengths"),
        Binding("ctrl+r", "render", "Render", show=False, id="preview.render"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: Any = None
        self.index = 0
        self.total: int | None = None
        self._local: list[str] = []
        self._wanted: str | None = None
        self._tokens = SidecarClient()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="preview-controls", classes="form-row"):
            yield Select([], prompt="dataset", id="preview-dataset", compact=True)
            yield Select([], prompt="template", id="preview-template", compact=True)
        with Horizontal(id="preview-controls-2", classes="form-row"):
            yield Input(
                placeholder="tokenizer dir (optional)", id="preview-tokenizer", compact=True
            )
            yield Label("cutoff")
            yield Input("2048", id="preview-cutoff", type="integer", compact=True)
            yield Checkbox("train_on_prompt", id="preview-train-on-prompt", compact=True)
        yield Static("", id="preview-status", classes="status-line")
        with VerticalScroll(id="preview-body"):
            yield Static("", id="preview-text")
        yield Histogram(id="preview-histogram")

    def on_mount(self) -> None:
        self.load_choices()

    def on_unmount(self) -> None:
        self._tokens.close()

    @on(PreviewDataset)
    def _preview_dataset(self, message: PreviewDataset) -> None:
        """Show the dataset the Datasets screen asked for (once the choices are loaded)."""
        self._wanted = message.dataset
        if self.info is not None:
            self._choose_wanted()

    def _choose_wanted(self) -> None:
        wanted, self._wanted = self._wanted, None
        datasets = self.query_one("#preview-dataset", Select)
        if wanted is not None and wanted in self._local:
            datasets.value = wanted
        elif datasets.value in (Select.NULL, None) and self._local:
            datasets.value = self._local[0]

    @work(thread=True, exclusive=True, group="preview-load")
    def load_choices(self) -> None:
        from tunedeck.core.errors import TunedeckError

        try:
            from tunedeck.core.datasets import load_dataset_info
            from tunedeck.core.templates import TEMPLATES

            info = load_dataset_info(self.app.data_dir)
        except (TunedeckError, ImportError) as error:
            self.from_thread(self._status, Text(str(error), style="red"))
            return
        self.from_thread(self._fill_choices, info, sorted(TEMPLATES))

    def _fill_choices(self, info: Any, templates: list[str]) -> None:
        self.info = info
        local = [name for name, spec in info.specs.items() if spec.is_local]
        datasets = self.query_one("#preview-dataset", Select)
        datasets.set_options([(name, name) for name in local])
        chooser = self.query_one("#preview-template", Select)
        chooser.set_options([(name, name) for name in templates])
        chooser.value = DEFAULT_TEMPLATE if DEFAULT_TEMPLATE in templates else templates[0]
        self._local = local
        self._choose_wanted()
        if not local:
            self._status(Text("no local datasets in this dataset_info.json", style="dim"))

    # Inputs -> render ---------------------------------------------------------------------------

    @on(Select.Changed, "#preview-dataset")
    def _dataset_changed(self) -> None:
        self.index, self.total = 0, None
        self.action_render()
        self.action_lengths()

    @on(Select.Changed, "#preview-template")
    @on(Checkbox.Changed)
    @on(Input.Submitted)
    def _options_changed(self) -> None:
        self.action_render()
        self.action_lengths()

    def _options(self) -> dict | None:
        dataset = self.query_one("#preview-dataset", Select).value
        template = self.query_one("#preview-template", Select).value
        if dataset in (Select.NULL, None) or self.info is None:
            return None
        cutoff_text = self.query_one("#preview-cutoff", Input).value.strip()
        return {
            "data_dir": str(self.info.data_dir),
            "dataset": dataset,
            "template": None if template in (Select.NULL, None) else template,
            "tokenizer": self.query_one("#preview-tokenizer", Input).value.strip() or None,
            "cutoff_len": int(cutoff_text) if cutoff_text.isdigit() else 2048,
            "train_on_prompt": self.query_one("#preview-train-on-prompt", Checkbox).value,
        }

    def action_step(self, delta: int) -> None:
        new = max(0, self.index + delta)
        if self.total is not None:
            new = min(new, max(0, self.total - 1))
        if new != self.index:
            self.index = new
            self.action_render()

    def action_render(self) -> None:
        options = self._options()
        if options is not None:
            self._status(Text("rendering…", style="dim"))
            self.render_sample(options, self.index)

    def action_lengths(self) -> None:
        options = self._options()
        if options is not None:
            self.query_one(Histogram).note = "measuring lengths…"
            self.query_one(Histogram).set_values([], "", None)
            self.measure_lengths(options)

    @work(thread=True, exclusive=True, group="preview-render")
    def render_sample(self, options: dict, index: int) -> None:
        from tunedeck.core.datasets import count_rows, get_row
        from tunedeck.core.errors import TunedeckError
        from tunedeck.core.templates import render

        spec = self.info.specs[options["dataset"]]
        try:
            if self.total is None:
                self.total = count_rows(spec, self.info.data_dir)
            if options["tokenizer"]:
                answer = self._tokens.request(op="render", index=index, **options)
                if not answer.get("ok"):
                    raise TunedeckError(answer.get("error", "failed"), hint=answer.get("hint"))
                rendered = answer["rendered"]
            else:
                view = get_row(spec, self.info.data_dir, index)
                if view.conversation is None:
                    problems = "; ".join(i.message for i in view.issues)
                    raise TunedeckError(f"row {index + 1} is invalid: {problems}")
                rendered = render(
                    view.conversation,
                    options["template"],
                    cutoff_len=options["cutoff_len"],
                    train_on_prompt=options["train_on_prompt"],
                ).to_json()
        except TunedeckError as error:
            self.from_thread(self._show_error, error)
            return
        self.from_thread(self._show_rendered, options, index, rendered)

    def _show_rendered(self, options: dict, index: int, rendered: dict) -> None:
        self.query_one("#preview-text", Static).update(_with_legend(rendered_text(_Doc(rendered))))
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append(f"sample {index + 1}", style="bold")
        status.append(f"/{self.total:,}" if self.total is not None else "")
        status.append(f" · {rendered.get('kind', 'sft')} · {options['template'] or 'hf'}")
        ids = rendered.get("input_ids")
        cutoff = options["cutoff_len"]
        if ids is not None:
            trained = sum(1 for label in rendered.get("labels") or [] if label != -100)
            status.append(
                f" · {len(ids):,} tokens / cutoff {cutoff:,}",
                style="red" if len(ids) >= cutoff else "green",
            )
            status.append(f" · {trained:,} trained")
        else:
            status.append(
                f" · {len(_Doc(rendered).text):,} chars (add a tokenizer for ids)", style="dim"
            )
        truncation = rendered.get("truncated")
        if truncation:
            status.append(
                f" · cut {truncation['original_tokens'] - truncation['kept_tokens']:,} tokens",
                style="bold red",
            )
        self._status(status)
        if truncation and truncation.get("parts"):
            cut = Text("\n\ntruncated by cutoff_len:\n", style="bold red")
            for part in truncation["parts"]:
                cut.append(
                    f"turn {part.get('turn')} {part.get('part')}: "
                    f"{part.get('removed_tokens')} tokens: ",
                    style="red",
                )
                cut.append(f"{part.get('removed_text', '')}\n", style="strike dim")
            text = _with_legend(rendered_text(_Doc(rendered)))
            text.append_text(cut)
            self.query_one("#preview-text", Static).update(text)

    def _show_error(self, error: Exception) -> None:
        message = Text(str(error), style="red")
        if getattr(error, "hint", None):
            message.append(f"  hint: {error.hint}", style="dim")
        self._status(message)

    @work(thread=True, exclusive=True, group="preview-lengths")
    def measure_lengths(self, options: dict) -> None:
        from tunedeck.core.datasets import iter_conversations
        from tunedeck.core.templates import render

        histogram = self.query_one(Histogram)
        try:
            if options["tokenizer"]:
                answer = self._tokens.request(op="lengths", limit=LENGTH_SAMPLE, **options)
                if not answer.get("ok"):
                    raise RuntimeError(answer.get("error"))
                lengths, unit = answer["lengths"], "tokens"
            else:
                spec = self.info.specs[options["dataset"]]
                lengths, unit = [], "chars"
                for number, conversation in enumerate(iter_conversations(spec, self.info.data_dir)):
                    if number >= LENGTH_SAMPLE:
                        break
                    rendered = render(conversation, options["template"], cutoff_len=1 << 30)
                    lengths.append(len(rendered.text))
        except Exception as error:  # the histogram is optional: say why it is missing
            histogram.note = f"no lengths: {error}"
            self.from_thread(histogram.refresh)
            return
        cutoff = options["cutoff_len"] if unit == "tokens" else None
        self.from_thread(histogram.set_values, lengths, unit, cutoff)

    def _status(self, text: Text) -> None:
        self.query_one("#preview-status", Static).update(text)


def _with_legend(body: Text) -> Text:
    """A one-line key to the styles, then the rendered prompt."""
    text = Text()
    text.append("template text", style="dim italic")
    text.append(" · data text · ", style="dim")
    text.append("trained (in the loss)", style="bold underline")
    text.append(" · masked: not underlined\n\n", style="dim")
    text.append_text(body)
    return text


class _Doc:
    """Rendered.to_json() read back with attribute access, for rendered_text."""

    def __init__(self, doc: dict):
        self.segments = [_Segment(s) for s in doc.get("segments", [])]
        self.text = "".join(s.text for s in self.segments)


class _Segment:
    def __init__(self, doc: dict):
        self.role, self.text = doc.get("role", ""), doc.get("text", "")
        self.trainable, self.source = bool(doc.get("trainable")), doc.get("source", "data")


SCREEN = PreviewScreen
