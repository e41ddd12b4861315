"""Preview: one dataset row rendered by a template, as training sees it; a length histogram.

Without a tokenizer the rendering runs here (segments only). With a tokenizer dir, token
ids, labels and truncation come from a sidecar process, so this process never imports
transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Input, Label, Select, Static

from tunedeck.core.templates import IGNORE_INDEX
from tunedeck.core.text import inert
from tunedeck.tui.messages import (
    LengthsMeasured,
    PreviewChoicesLoaded,
    PreviewDataset,
    SampleRendered,
)
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.sidecar import DEFAULT_CUTOFF_LEN, Sample, SampleRequest, SidecarClient
from tunedeck.tui.widgets.conversation_text import (
    ids_text,
    rendered_text,
    segments_text,
    truncation_text,
)
from tunedeck.tui.widgets.histogram import Histogram

if TYPE_CHECKING:
    from tunedeck.core.datasets import DatasetInfo

DEFAULT_TEMPLATE = "default"


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
        Binding("b", "batches", "Batches", id="preview.batches"),
        Binding("ctrl+r", "render", "Render", show=False, id="preview.render"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: DatasetInfo | None = None
        self.index = 0
        self.total: int | None = None
        self._local: list[str] = []
        self._wanted: PreviewDataset | None = None
        self._pending_row = 0  # the row a PreviewDataset asked for, until its entry is chosen
        self._tokens = SidecarClient()
        self._shown: SampleRendered | None = None  # redrawn in the new colours on a theme change
        self._error: tuple[BaseException, bool] | None = None

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
        follow_theme(self, self._recolour)
        self.load_choices()

    def _recolour(self) -> None:
        """Redraw the sample, or the error shown in its place, in the new theme's colours."""
        if self._shown is not None:
            self._show_rendered(self._shown)
        elif self._error is not None:
            self._show_error(*self._error)

    def on_unmount(self) -> None:
        self._tokens.close()

    @on(PreviewDataset)
    def _preview_dataset(self, message: PreviewDataset) -> None:
        """Show the dataset (and row, template, tokenizer, cutoff_len) another screen asked
        for, once the choices are loaded."""
        self._wanted = message
        if self.info is not None:
            self._choose_wanted()

    def _choose_wanted(self) -> None:
        wanted, self._wanted = self._wanted, None
        datasets = self.query_one("#preview-dataset", Select)
        if wanted is not None and wanted.dataset in self._local:
            self._take_options(wanted)
            self._pending_row = max(0, wanted.row)
            if datasets.value == wanted.dataset:
                self._dataset_changed()
            else:
                datasets.value = wanted.dataset
        elif datasets.value in (Select.NULL, None) and self._local:
            datasets.value = self._local[0]

    def _take_options(self, wanted: PreviewDataset) -> None:
        """The template, tokenizer and cutoff_len a PreviewDataset names (those it names)."""
        template = wanted.template or ("hf" if wanted.tokenizer else None)
        chooser = self.query_one("#preview-template", Select)
        if template is not None and template in [v for _, v in chooser._options]:
            chooser.value = template
        if wanted.tokenizer is not None:
            self.query_one("#preview-tokenizer", Input).value = wanted.tokenizer
        if wanted.cutoff_len is not None:
            self.query_one("#preview-cutoff", Input).value = str(wanted.cutoff_len)

    @work(thread=True, exclusive=True, group="preview-load", exit_on_error=False)
    def load_choices(self) -> None:
        from tunedeck.core.datasets import load_dataset_info
        from tunedeck.core.templates import TEMPLATES

        info = load_dataset_info(self.app.data_dir)
        self.post_message(PreviewChoicesLoaded(info, tuple(sorted(TEMPLATES))))

    @on(PreviewChoicesLoaded)
    def _fill_choices(self, message: PreviewChoicesLoaded) -> None:
        info, templates = message.info, list(message.templates)
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
        self.index, self.total, self._pending_row = self._pending_row, None, 0
        self.action_render()
        self.action_lengths()

    @on(Select.Changed, "#preview-template")
    @on(Checkbox.Changed)
    @on(Input.Submitted)
    def _options_changed(self) -> None:
        self.action_render()
        self.action_lengths()

    def _request(self) -> SampleRequest | None:
        """What the inputs ask for now (None until a dataset is chosen)."""
        dataset = self.query_one("#preview-dataset", Select).value
        template = self.query_one("#preview-template", Select).value
        if dataset in (Select.NULL, None) or self.info is None:
            return None
        cutoff_text = self.query_one("#preview-cutoff", Input).value.strip()
        return SampleRequest(
            data_dir=str(self.info.data_dir),
            dataset=str(dataset),
            template=None if template in (Select.NULL, None) else str(template),
            tokenizer=self.query_one("#preview-tokenizer", Input).value.strip() or None,
            cutoff_len=int(cutoff_text) if cutoff_text.isdigit() else DEFAULT_CUTOFF_LEN,
            train_on_prompt=self.query_one("#preview-train-on-prompt", Checkbox).value,
        )

    def action_step(self, delta: int) -> None:
        new = max(0, self.index + delta)
        if self.total is not None:
            new = min(new, max(0, self.total - 1))
        if new != self.index:
            self.index = new
            self.action_render()

    def action_batches(self) -> None:
        """A run config's first training batches (the config last used, else asked for)."""
        from tunedeck.tui.screens.batches import open_batches

        open_batches(self.app)

    def action_render(self) -> None:
        request = self._request()
        if request is not None:
            self._status(Text("rendering…", style="dim"))
            self.render_sample(request, self.index)

    def action_lengths(self) -> None:
        request = self._request()
        if request is not None:
            histogram = self.query_one(Histogram)
            histogram.note = "measuring lengths…"
            histogram.set_values([], "", None)
            self.measure_lengths(request)

    @work(thread=True, exclusive=True, group="preview-render", exit_on_error=False)
    def render_sample(self, request: SampleRequest, index: int) -> None:
        from tunedeck.core.datasets import count_rows

        spec = self.info.specs[request.dataset]
        total = self.total if self.total is not None else count_rows(spec, self.info.data_dir)
        if request.tokenizer:
            sample = self._tokens.sample(request, index)
        else:
            sample = _render_here(spec, self.info.data_dir, request, index)
        self.post_message(SampleRendered(request, sample, total))

    @work(thread=True, exclusive=True, group="preview-lengths", exit_on_error=False)
    def measure_lengths(self, request: SampleRequest) -> None:
        """Lengths come from the sidecar: tokens through the core's counting path, or the
        characters of each rendered row without a tokenizer."""
        unit = "tokens" if request.tokenizer else "chars"
        self.post_message(LengthsMeasured(request, self._tokens.lengths(request), unit))

    def worker_failed(self, group: str, error: BaseException) -> None:
        if group == "preview-render":
            self._show_error(error)
        elif group == "preview-lengths":  # the histogram is optional: say why it is missing
            histogram = self.query_one(Histogram)
            histogram.note = f"no lengths: {error}"
            histogram.refresh()
        elif group == "preview-load":
            self._show_error(error, with_hint=False)
        else:
            super().worker_failed(group, error)

    # Display ------------------------------------------------------------------------------------

    @on(SampleRendered)
    def _show_rendered(self, message: SampleRendered) -> None:
        if message.request != self._request() or message.sample.index != self.index:
            return  # a late answer to inputs that have changed since
        self.total = message.total
        sample, request = message.sample, message.request
        self._shown, self._error = message, None
        palette = Palette.of(self.app)
        self.query_one("#preview-text", Static).update(sample_text(sample, palette))
        self._status(_sample_status(sample, request, self.total, palette))

    @on(LengthsMeasured)
    def _show_lengths(self, message: LengthsMeasured) -> None:
        if message.request != self._request():
            return
        cutoff = message.request.cutoff_len if message.unit == "tokens" else None
        self.query_one(Histogram).set_values(message.lengths, message.unit, cutoff)

    def _show_error(self, error: BaseException, with_hint: bool = True) -> None:
        self._shown, self._error = None, (error, with_hint)
        text = Text(inert(error), style=Palette.of(self.app).style("error"))
        if with_hint and getattr(error, "hint", None):
            text.append(f"  hint: {inert(error.hint)}", style="dim")
        self._status(text)

    def _status(self, text: Text) -> None:
        self.query_one("#preview-status", Static).update(text)


def _render_here(spec: Any, data_dir: Any, request: SampleRequest, index: int) -> Sample:
    """Render without a tokenizer in this process: segments only, no transformers."""
    from tunedeck.core.datasets import get_row
    from tunedeck.core.errors import DatasetError
    from tunedeck.core.templates import render

    view = get_row(spec, data_dir, index)
    if view.conversation is None:
        problems = "; ".join(i.message for i in view.issues)
        raise DatasetError(f"row {index + 1} is invalid: {problems}")
    rendered = render(
        view.conversation,
        request.template,
        cutoff_len=request.cutoff_len,
        train_on_prompt=request.train_on_prompt,
    )
    return Sample(index, rendered)


def sample_text(sample: Sample, palette: Palette) -> Text:
    """The legend, the text training sees (the chosen answer, then a ranking row's rejected
    one), what cutoff_len cut, and the token ids when there are any."""
    rendered = sample.rendered
    text = _with_legend(_kept_text(rendered, sample.kept, palette))
    if rendered.rejected is not None:
        text.append("\n\nrejected\n", style="bold")
        text.append_text(_kept_text(rendered.rejected, sample.rejected_kept, palette))
    for label, side in (("", rendered), ("rejected ", rendered.rejected)):
        if side is not None and side.truncated is not None and side.truncated.parts:
            text.append_text(truncation_text(side.truncated, palette, label))
    if rendered.input_ids is not None:
        text.append_text(ids_text(rendered, "input_ids"))
        if rendered.rejected is not None and rendered.rejected.input_ids is not None:
            text.append_text(ids_text(rendered.rejected, "rejected input_ids"))
    return text


def _kept_text(rendered: Any, kept: tuple | None, palette: Palette) -> Text:
    """Segments when nothing was cut; after a cut, only the text of the kept ids."""
    if kept is not None and rendered.truncated is not None:
        return segments_text(kept, palette)
    return rendered_text(rendered, palette)


def _sample_status(
    sample: Sample, request: SampleRequest, total: int | None, palette: Palette
) -> Text:
    rendered = sample.rendered
    status = Text(no_wrap=True, overflow="ellipsis")
    status.append(f"sample {sample.index + 1}", style="bold")
    status.append(f"/{total:,}" if total is not None else "")
    status.append(f" · {rendered.kind} · {request.template or 'hf'}")
    ids, cutoff = rendered.input_ids, request.cutoff_len
    if ids is not None:
        trained = sum(1 for label in rendered.labels or [] if label != IGNORE_INDEX)
        status.append(
            f" · {len(ids):,} tokens / cutoff {cutoff:,}",
            style=palette.style("error" if len(ids) >= cutoff else "ok"),
        )
        status.append(f" · {trained:,} trained")
    else:
        status.append(f" · {len(rendered.text):,} chars (add a tokenizer for ids)", style="dim")
    truncation = rendered.truncated
    if truncation:
        status.append(
            f" · cut {truncation.original_tokens - truncation.kept_tokens:,} tokens",
            style=palette.style("error", "bold"),
        )
    return status


def _with_legend(body: Text) -> Text:
    """A one-line key to the styles, then the rendered prompt."""
    text = Text()
    text.append("template text", style="dim italic")
    text.append(" · data text · ", style="dim")
    text.append("trained (in the loss)", style="bold underline")
    text.append(" · masked: not underlined\n\n", style="dim")
    text.append_text(body)
    return text


SCREEN = PreviewScreen
