"""Every setting of an installation, from `passersby.toml`, overridden by command-line flags.

One table: the dataclasses below ARE the settings, each knob declared once with its type, default
and doc (stream/knobs.knob); [walk], [peep] and the loop's [feedback] knobs are declared beside
the code that runs them (stream/walker.WalkConfig, stream/peep.PeepKnobs,
stream/feedback.FeedbackKnobs) and read from there. The settings file, `passersby config show`,
docs/settings.md (checked against them by tests/test_settings.py) and the command-line flags'
help (`flag_help`) all read these declarations. A file holds any subset:

    [model]
    runtime = "openvino"

    [walk]
    style = "drift"
    tempo = 8.0

    [[screens]]
    name = "feminine"
    label = "feminine"
    monitor = 1

Where the file comes from: `--config FILE`, else `./passersby.toml` if it exists, else
`<home>/passersby.toml` if it exists, else the defaults.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from passersby.stream.feedback import FeedbackKnobs
from passersby.stream.knobs import bounds_of, doc_of, knob
from passersby.stream.peep import PeepKnobs
from passersby.stream.walker import WalkConfig

CONFIG_FILE = "passersby.toml"
LABELS = ("feminine", "masculine")


def _doc(text: str, *, default: Any, bounds: tuple[float, float] | None = None) -> Any:
    return knob(default, text, bounds)


@dataclass(frozen=True)
class ModelSettings:
    path: str = _doc("Generator .safetensors; empty = the shipped default model.", default="")
    runtime: str = _doc("auto, openvino, onnxruntime, compile, torch-fused or torch (the eager reference).",
                        default="auto")
    threads: int = _doc("CPU threads per screen's renderer (1 on a 2-core machine with two screens).", default=1,
                       bounds=(1, 256))
    directions: str = _doc("Direction file: the model's named latent directions, the screens' sliders "
                           "(`passersby directions MODEL --out FILE`); empty = the file shipped for the shipped "
                           "model, none for another model.", default="")
    choose: int = _doc("Labelled screens of an unconditional model: candidates drawn near the typical face "
                       "(the direction's small offset) and rendered per anchor; the model's sex probe keeps "
                       "the one that reads most clearly as the screen's label (model/choose.py). Each costs "
                       "a render and the probe's features (~0.1 s of one core), done ahead in the screen's "
                       "claim thread. 0 = every face pushed to the file's screen offset (before v4); a "
                       "screen with a taste or a critic pushes too.", default=4, bounds=(0, 16))


@dataclass(frozen=True)
class ScreenSettings:
    name: str = _doc("Screen name; also its ledger channel and its web page /screen/NAME.", default="screen")
    label: str = _doc("feminine, masculine, or empty for unsteered faces (a conditional model: between the classes).", default="")
    monitor: int = _doc("Display index for its window (0 = first monitor).", default=0, bounds=(0, 63))
    source: str = _doc("walk (latent walk through anchor faces), feedback (the machine repaints its own "
                       "output; [feedback] settings) or peep (blank until pressed, then a face for one "
                       "viewer; [peep] settings).", default="walk")
    offsets: str = _doc("walk screens: fixed offsets along named directions of model.directions, in std of "
                        "each direction, -3..3, e.g. \"head turn=1.5, light=-1\" (the sliders' start; a live "
                        "control moves them from there); empty = none.", default="")


@dataclass(frozen=True)
class StreamSettings:
    queue: int = _doc("Frames rendered ahead per screen (bounded queue).", default=12, bounds=(1, 600))
    seed: int = _doc("Seeds each channel's anchor RNG the first time it runs; -1 = OS entropy. "
                     "Afterwards the RNG state lives in the ledger.", default=-1,
                bounds=(-1, 2**63 - 1))
    home: str = _doc("Home directory (ledger, captures); empty = $PASSERSBY_HOME or the per-user data dir.",
                     default="")


@dataclass(frozen=True)
class WindowSettings:
    fullscreen: bool = _doc("Full-screen windows (false: 512x512 windows, for trying things out).", default=True)


@dataclass(frozen=True)
class WebSettings:
    host: str = _doc("Address the kiosk server binds to; loopback by default.", default="127.0.0.1")
    port: int = _doc("Kiosk server port (0 = any free port).", default=8765, bounds=(0, 65535))
    token: str = _doc("Token required for control actions; empty = a fresh random one each start.", default="")
    jpeg_quality: int = _doc("JPEG quality of frames sent to browsers.", default=90, bounds=(1, 100))


@dataclass(frozen=True)
class TasteSettings:
    curator: str = _doc("Curator whose taste (`passersby taste`) the stream follows; empty = none.", default="")
    exactingness: float = _doc("0 = ignore the taste, 1 = only the faces it likes most; live knob on the "
                               "kiosk overview.", default=0.5, bounds=(0, 1))
    model: str = _doc("What the taste is learnt from: 'picture' (what the faces look like: the rated faces' "
                      "EfficientNet-Lite0 features, cached in <home>/cache/, taste/features.py; candidates' "
                      "predicted by the model's feature head, taste/head.py) or 'z' (linear in the latent, the "
                      "model before issue 21). The swipe app and the stream must agree.",
                      default="picture")
    min_critic: float = _doc("The critic: an anchor is shown only if dlib's face detector scores it at least "
                             "this (0 = a face is found, 1-2 = a clear one); -1 = no critic. Each judged "
                             "candidate is rendered first (~45 ms): high values slow new faces down.",
                             default=-1.0, bounds=(-1, 4))
    rerank: int = _doc("Picture taste: the candidates it likes most by their predicted looks that are rendered "
                       "and re-ranked by what they really show, per anchor (0 = none). Each costs a render and "
                       "an embedding (~0.1 s of one core), done ahead in the screen's claim thread.",
                       default=4, bounds=(0, 16))


@dataclass(frozen=True)
class FeedbackSettings(FeedbackKnobs):
    """[feedback]: the loop's knobs (stream/feedback.FeedbackKnobs) and the painter file it runs."""

    painter: str = _doc("Painter .safetensors for feedback screens (`passersby train --kind painter`); "
                        "empty = the shipped one.", default="")


@dataclass(frozen=True)
class EnhancerSettings:
    path: str = _doc("Enhancer .safetensors, the learned upscaler (`passersby train --kind enhancer`); "
                     "empty = the shipped one.", default="")
    mode: str = _doc("auto: upscale where this machine keeps walk.fps (measured at start; lowered when a "
                     "screen falls behind); on: always (frames between keyframes are blends); off: never.",
                     default="auto")
    every: int = _doc("walk screens: frames per keyframe (rendered, then enhanced; the frames between are "
                      "blends); 0 = the fewest that keep walk.fps on this machine, measured at start.", default=0,
                      bounds=(0, 8))
    raise_after: float = _doc("Seconds of headroom after which a chain lowered under load steps back up one level "
                              "(never above the level chosen at start; doubled for a level that falls behind "
                              "again within one wait); 0 = never step up.", default=300.0, bounds=(0, 86400))


PeepSettings = PeepKnobs  # [peep]: the peepshow's knobs, declared in stream/peep.py


@dataclass(frozen=True)
class ScheduleSettings:
    enabled: bool = _doc("Follow opening hours: outside them the screens go dark and the engine idles "
                         "(no face claimed), and it wakes on time.", default=False)
    days: str = _doc("Open days: mon..sun, ranges and lists, e.g. \"tue-sun\" or \"mon-fri,sun\".", default="mon-sun")
    hours: str = _doc("Opening hours, e.g. \"10:00-18:00\" (\"18:00-02:00\" runs past midnight).",
                      default="10:00-18:00")
    timezone: str = _doc("Time zone of the hours, e.g. Europe/Berlin.", default="UTC")
    holidays: str = _doc("Closed dates, comma-separated, e.g. \"2026-12-25,2027-01-01\".", default="")


@dataclass(frozen=True)
class LedgerSettings:
    url: str = _doc("Never-repeat ledger: empty = the SQLite file in the home; postgresql://... = an edition's "
                    "shared ledger (several consoles, never the same face on any of them).", default="")
    console: str = _doc("This console's name in the edition (unique per console; empty = the host name). "
                        "Only with a postgresql:// url.", default="")
    lease: int = _doc("Anchors each screen leases ahead from a shared ledger and keeps in <home>/lease.sqlite, "
                      "to play through database outages (one per face: at the default walk's face every ~6 s, 900 = 1.5 hours).",
                      default=900, bounds=(1, 100_000))


@dataclass(frozen=True)
class OscSettings:
    port: int = _doc("UDP port of the OSC control server (docs/osc.md), e.g. 9000; 0 = off.", default=0,
                     bounds=(0, 65535))
    host: str = _doc("Address the OSC server listens on; loopback by default (OSC has no token: open it to a "
                     "network only where everyone on it may play the installation).", default="127.0.0.1")
    max_rate: int = _doc("OSC datagrams (messages or bundles) a second the server reads at most; the rest are "
                         "dropped unread, so a flood never slows the stream.", default=1000, bounds=(1, 100_000))
    targets: str = _doc("Where the state goes out over OSC (frame keys, fps, new faces, presses): "
                        "comma-separated host:port, e.g. \"127.0.0.1:9001\"; empty = none.", default="")
    out_rate: int = _doc("OSC messages a second at most to each target; more are dropped (counted).",
                         default=120, bounds=(1, 10_000))


@dataclass(frozen=True)
class MidiSettings:
    port: str = _doc("MIDI input port (its name or a part of it: `passersby midi list`); empty = off. Needs "
                     "the [midi] extra.", default="")
    mapping: str = _doc("MIDI mapping file (CC or note -> control, TOML; `passersby midi learn` writes it); "
                        "empty = <home>/midi.toml.", default="")


ENHANCER_MODES = ("auto", "on", "off")
SOURCES = ("walk", "feedback", "peep")
DEFAULT_SCREENS = (ScreenSettings("masculine", "masculine", 0), ScreenSettings("feminine", "feminine", 1))


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one installation.

    Example:
        >>> s = load_settings(None, {"walk.tempo": 4.0}, search=False)
        >>> s.walk.tempo, [sc.name for sc in s.screens]
        (4.0, ['masculine', 'feminine'])
    """

    model: ModelSettings = ModelSettings()
    walk: WalkConfig = WalkConfig()
    stream: StreamSettings = StreamSettings()
    window: WindowSettings = WindowSettings()
    web: WebSettings = WebSettings()
    taste: TasteSettings = TasteSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    enhancer: EnhancerSettings = EnhancerSettings()
    peep: PeepSettings = PeepSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    ledger: LedgerSettings = LedgerSettings()
    osc: OscSettings = OscSettings()
    midi: MidiSettings = MidiSettings()
    screens: tuple[ScreenSettings, ...] = DEFAULT_SCREENS
    source: str = ""  # the file these came from ("" = defaults only); not a setting

    def __post_init__(self) -> None:
        names = [s.name for s in self.screens]
        if not names:
            raise SettingsError("screens: at least one [[screens]] entry is needed")
        if len(set(names)) != len(names):
            raise SettingsError(f"screens: names must differ, got {names}")
        for s in self.screens:
            if not s.name or not all(c.isalnum() or c in "-_" for c in s.name):
                raise SettingsError(f"screens.name: {s.name!r} must be letters, digits, '-' or '_'")
            if s.label not in ("", *LABELS):
                raise SettingsError(f"screens.label: {s.label!r} must be one of {LABELS} or empty")
            if s.source not in SOURCES:
                raise SettingsError(f"screens.source: {s.source!r} must be one of {SOURCES}")
            try:
                if parse_offsets(s.offsets) and s.source != "walk":
                    raise ValueError(f"only walk screens are steered, {s.name!r} is a {s.source} screen")
            except ValueError as e:
                raise SettingsError(f"screens.offsets: {e}") from None
        _check_ranges(self)


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it."""


def parse_offsets(text: str) -> dict[str, float]:
    """A screen's `offsets` setting: "name=amount, name=amount" -> {name: amount}, amounts in -3..3.

    Raises:
        ValueError: not name=number pairs, a name twice, or an amount outside -3..3.

    Example:
        >>> parse_offsets("head turn=1.5, light = -1")
        {'head turn': 1.5, 'light': -1.0}
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.rpartition("=")
        name = name.strip()
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if not eq or not name or not math.isfinite(amount):
            raise ValueError(f"{part!r} is not name=amount (e.g. \"head turn=1.5\")")
        if name in out:
            raise ValueError(f"{name!r} is given twice")
        if not -3.0 <= amount <= 3.0:
            raise ValueError(f"{name!r}: amounts are in std, -3..3, got {amount:g}")
        out[name] = amount
    return out


SECTIONS = {"model": ModelSettings, "walk": WalkConfig, "stream": StreamSettings,
            "window": WindowSettings, "web": WebSettings, "taste": TasteSettings, "feedback": FeedbackSettings,
            "enhancer": EnhancerSettings, "peep": PeepSettings, "schedule": ScheduleSettings,
            "ledger": LedgerSettings, "osc": OscSettings, "midi": MidiSettings}


def _check_bounds(s: Settings) -> None:
    """Every numeric setting inside the bounds its knob declares (stream/knobs.Bounds).

    Checked at load, before anything runs: an absurd value (walk.fps = 1e308 overflowed a frame
    count in `render`; 100000 rendered forever) is one line naming the setting, its value and
    the allowed range, never a crash or a hang later.

    Raises:
        SettingsError: "walk.fps: must be in 1..120, got 1e+308" (load_settings adds the file).

    Example:
        >>> _check_bounds(Settings())  # the defaults are inside their bounds
    """
    tables = [(section, cls, getattr(s, section)) for section, cls in SECTIONS.items()]
    tables += [("screens", ScreenSettings, sc) for sc in s.screens]
    for section, cls, obj in tables:
        for f in dataclasses.fields(cls):
            b = bounds_of(cls, f.name)
            v = getattr(obj, f.name)
            if b is not None and v not in b:
                raise SettingsError(f"{section}.{f.name}: must be in {b}, got {v!r}")


def _check_ranges(s: Settings) -> None:
    _check_bounds(s)
    checks = [
        ("taste.model", s.taste.model in ("picture", "z"), "'picture' or 'z'"),
        ("enhancer.mode", s.enhancer.mode in ENHANCER_MODES, f"one of {ENHANCER_MODES}"),
        ("ledger.url", s.ledger.url == "" or s.ledger.url.startswith(("postgresql://", "postgres://")),
         "empty (the SQLite file in the home) or a postgresql:// URL"),
        ("ledger.console", "/" not in s.ledger.console, "a name without '/'"),
    ]
    try:
        osc_targets(s)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    for name, ok, want in checks:
        if not ok:
            raise SettingsError(f"{name}: must be {want}")
    if any(sc.source == "feedback" for sc in s.screens):  # checked where a loop will run
        try:
            feedback_config(s)
        except ValueError as e:
            raise SettingsError(f"{e} (feedback screens use walk.tempo and walk.fps)") from None
    try:
        opening_hours(s)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    try:
        peep_config(s)
    except ValueError as e:
        raise SettingsError(str(e).replace("peep ", "peep.", 1)) from None
    from passersby.config import RUNTIMES

    if s.model.runtime not in RUNTIMES:
        raise SettingsError(f"model.runtime: {s.model.runtime!r} is not one of {RUNTIMES}")


def feedback_config(s: "Settings", step_every: int | None = None):
    """The feedback loop's knobs (stream.feedback.FeedbackConfig) from [walk] and [feedback];
    `step_every` replaces an automatic (0) feedback.step_every once it is measured."""
    from passersby.stream.feedback import FeedbackConfig

    f = s.feedback
    if f.step_every < 0:
        raise ValueError(f"step_every must be >= 0 (0 = automatic), got {f.step_every}")
    knobs = {k.name: getattr(f, k.name) for k in dataclasses.fields(FeedbackKnobs)}
    return FeedbackConfig(**{**knobs, "step_every": step_every or f.step_every or 1}, tempo=s.walk.tempo,
                          fps=s.walk.fps)


def osc_targets(s: "Settings") -> list[tuple[str, int]]:
    """[osc] targets as [(host, port)]; ValueError naming a bad one.

    Example:
        >>> osc_targets(load_settings(None, {"osc.targets": "127.0.0.1:9001"}, search=False))
        [('127.0.0.1', 9001)]
    """
    out = []
    for part in (p.strip() for p in s.osc.targets.split(",") if p.strip()):
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"osc.targets: {part!r} must be host:port, e.g. 127.0.0.1:9001")
        out.append((host.strip("[]"), int(port)))
    return out


def opening_hours(s: "Settings"):
    """The schedule (stream.schedule.Schedule) of [schedule], or None when it is not enabled."""
    from passersby.stream.schedule import Schedule

    c = s.schedule
    schedule = Schedule.parse(c.days, c.hours, c.timezone, c.holidays)  # checked even when off
    return schedule if c.enabled else None


def peep_config(s: "Settings"):
    """The peepshow's knobs (stream.peep.PeepConfig) from [peep] and walk.fps."""
    from passersby.stream.peep import PeepConfig

    return PeepConfig(**{k.name: getattr(s.peep, k.name) for k in dataclasses.fields(PeepKnobs)}, fps=s.walk.fps)


def _coerce(where: str, value: Any, typ: Any) -> Any:
    """value as typ (int, float, str, bool), or a SettingsError naming `where`."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
    if not ok:
        raise SettingsError(f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}")
    if typ is float and not math.isfinite(value):
        raise SettingsError(f"{where}: must be finite, got {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], where: str, base: Any = None) -> Any:
    """An instance of dataclass `cls` from `data`, unknown keys refused, missing keys from `base`."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {unknown}; known: {names}")
    values = {} if base is None else {n: getattr(base, n) for n in names}
    for k, v in data.items():
        values[k] = _coerce(f"{where}.{k}", v, hints[k])
    try:
        return cls(**values)
    except SettingsError:
        raise
    except ValueError as e:
        raise SettingsError(f"{where}: {e}") from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e})") from None


def find_config(explicit: Path | None, home: Path | None) -> Path | None:
    """The config file to use: explicit, ./passersby.toml, <home>/passersby.toml, or None."""
    if explicit is not None:
        return Path(explicit)
    for candidate in (Path.cwd() / CONFIG_FILE, *([home / CONFIG_FILE] if home else [])):
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: Path | None, overrides: dict[str, Any] | None = None, *, search: bool = True,
                  home: Path | None = None) -> Settings:
    """Settings from the config file (see the module docstring) with `overrides` on top.

    Args:
        path: --config FILE, or None to search (when `search`).
        overrides: {"section.key": value} from command-line flags; None values are skipped.
        search: look for ./passersby.toml and <home>/passersby.toml when path is None.
        home: the resolved home directory, for the search.
    """
    file = find_config(path, home) if (path is not None or search) else None
    data = read_toml(file) if file else {}
    where = str(file) if file else "defaults"
    unknown = sorted(set(data) - set(SECTIONS) - {"screens"})
    if unknown:
        raise SettingsError(f"{where}: unknown section(s) {unknown}; known: {sorted(SECTIONS) + ['screens']}")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            raise ValueError(f"override {key!r}: expected 'section.key' with section in {sorted(SECTIONS)}")
        data.setdefault(section, {})[name] = value
    parts: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise SettingsError(f"{where}: [{section}] must be a table")
        parts[section] = _build(cls, raw, f"{where}: {section}", getattr(Settings, section))
    screens = data.get("screens")
    if screens is not None:
        if not isinstance(screens, list) or not all(isinstance(s, dict) for s in screens):
            raise SettingsError(f"{where}: screens must be an array of tables ([[screens]])")
        parts["screens"] = tuple(_build(ScreenSettings, s, f"{where}: screens[{i}]") for i, s in enumerate(screens))
    try:
        return Settings(**parts, source=str(file) if file else "")
    except SettingsError as e:
        raise SettingsError(f"{where}: {e}") from None


def to_toml(s: Settings) -> str:
    """The resolved settings as a complete passersby.toml, each key with its doc as a comment."""
    lines = [f"# passersby settings (from {s.source or 'defaults'})", ""]
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        lines += _table_lines(cls, getattr(s, section))
        lines.append("")
    for sc in s.screens:
        lines.append("[[screens]]")
        lines += _table_lines(ScreenSettings, sc)
        lines.append("")
    return "\n".join(lines)


def _table_lines(cls: type, obj: Any) -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc", "")
        if f.metadata.get("bounds") is not None:  # the operator sees what is allowed where they edit
            doc += f" Allowed: {f.metadata['bounds']}."
        out.append(f"{f.name} = {_toml_value(getattr(obj, f.name))}" + (f"  # {doc}" if doc else ""))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def settings_table() -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed, meaning) for every setting: the source of docs/settings.md.
    `allowed` is the knob's bounds ("1..120", "(0, 1]") or "" for text and switches.

    Example:
        >>> [r for r in settings_table() if r[0] == "walk.fps"][0][:4]
        ('walk.fps', 'float', '30.0', '1..120')
    """
    rows = []
    for section, cls in [*SECTIONS.items(), ("screens", ScreenSettings)]:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = getattr(Settings, section, None)
            value = getattr(default, f.name) if section != "screens" else f.default
            doc = f.metadata.get("doc", "")
            bounds = f.metadata.get("bounds")
            rows.append((f"{section}.{f.name}", hints[f.name].__name__, _toml_value(value),
                         "" if bounds is None else str(bounds), doc))
    return rows


def flag_help(key: str) -> str:
    """The help text of a command-line flag that sets `key`: the setting's own doc (one text for
    the file, `config show`, docs/settings.md and the flag) and the setting it overrides.

    Args:
        key: "section.name", e.g. "walk.tempo".

    Raises:
        KeyError: no such setting (a typo in a flag's declaration, found when the module loads).

    Example:
        >>> flag_help("walk.tempo")
        'Seconds from one anchor face to the next. (setting: walk.tempo)'
    """
    section, _, name = key.partition(".")
    cls = ScreenSettings if section == "screens" else SECTIONS[section]
    return f"{doc_of(cls, name)} (setting: {key})"


def settings_and_home(config: Path | None, home: Path | None) -> tuple[Settings, Path]:
    """What every command starts from: the settings (--config, else ./passersby.toml, else
    <home>/passersby.toml) and the home (--home, else stream.home, else $PASSERSBY_HOME, else
    the per-user data dir). One source, so `taste`, `ledger` and `show` agree on the model, the
    runtime and the files.

    Raises:
        SettingsError: a bad or missing config file (the message names it).

    Example:
        >>> s, home = settings_and_home(None, Path("/srv/gallery"))  # reads the machine's config and home  # doctest: +SKIP
    """
    from passersby.home import resolve_home

    s = load_settings(config, None, home=resolve_home(home))
    return s, resolve_home(home or (Path(s.stream.home) if s.stream.home else None))
