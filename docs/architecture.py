"""Draw the package's architecture: docs/architecture.png, one box per package, arrows = imports.

    .venv/bin/python docs/architecture.py

Reads every module under passersby/ with `ast` (nothing is imported, so it is cheap and needs no
torch), collects its `passersby.*` imports wherever they are (module level, inside functions,
under `if TYPE_CHECKING:`; tests/test_layers.py counts them all too: a lazy import is still an
arrow), and prints the import cycles between modules and the package's size. A "package" is a
sub-package (stream, model, ...) or a top-level module (settings, runtime, ...); the package's own
__init__ is the box "passersby".
"""

from __future__ import annotations

import ast
import itertools
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "passersby"
PNG = Path(__file__).resolve().with_name("architecture.png")

# Roles, for the colours only: the layers themselves come from the imports (see layers()).
ROLES = {
    "stream core": ("stream",),
    "sinks (see only frames)": ("web", "outputs"),
    "models, data, training": ("model", "data", "metrics", "train", "checkpoint"),
    "application (only cli reaches it)": ("app",),
    "command line": ("cli", "sample_cli"),
}
COLOURS = {"stream core": "#f6c26b", "sinks (see only frames)": "#9fd4a3",
           "models, data, training": "#9cc3e6", "application (only cli reaches it)": "#e6a1a1",
           "command line": "#c9b3e6", "other top-level modules": "#e4e4e4"}


def role(package: str) -> str:
    return next((r for r, members in ROLES.items() if package in members), "other top-level modules")


# --- reading the code --------------------------------------------------------------------------

def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def package_of(module: str) -> str:
    """passersby.stream.engine -> stream; passersby.settings -> settings; passersby -> passersby."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_names(tree: ast.Module) -> list[tuple[tuple[str, ...], str]]:
    """(candidate names, how) for every passersby import; how is 'top', 'lazy' or 'typing'.

    `from passersby.metrics import faces` may import the module passersby.metrics.faces or a
    name in passersby.metrics: both are candidates, and resolve() keeps the first that is a module."""
    found = []

    def visit(node: ast.AST, how: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and how == "top":
            how = "lazy"
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:  # the else branch, if any, runs: it keeps its `how`
                visit(child, "typing")
            node = ast.Module(body=node.orelse, type_ignores=[])
        if isinstance(node, ast.Import):
            found.extend(((a.name,), how) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend(((f"{node.module}.{a.name}", node.module), how) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, how)

    visit(tree, "top")
    return [(names, how) for names, how in found if names[-1].split(".")[0] == "passersby"]


def resolve(names: tuple[str, ...], modules: set[str]) -> str | None:
    return next((n for n in names if n in modules), None)


def scan() -> tuple[dict[str, int], dict[tuple[str, str], str]]:
    """Lines per module, and every module -> module import edge with how it is imported
    ('top' wins over 'lazy' over 'typing' when a module imports another several times)."""
    files = {module_name(f): f for f in sorted(PKG.rglob("*.py"))}
    lines = {m: len(f.read_text().splitlines()) for m, f in files.items()}
    rank = {"top": 0, "lazy": 1, "typing": 2}
    edges: dict[tuple[str, str], str] = {}
    for mod, f in files.items():
        for names, how in imported_names(ast.parse(f.read_text())):
            target = resolve(names, set(files))
            if target and target != mod:
                edges[mod, target] = min(how, edges.get((mod, target), how), key=rank.get)
    return lines, edges


# --- graph arithmetic -------------------------------------------------------------------------

def strongly_connected(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns every component, in reverse topological order."""
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            out.append(sorted(component))

    for n in nodes:
        if n not in index:
            connect(n)
    return out


def layers(packages: list[str], weights: Counter) -> dict[str, int]:
    """Longest path down: a package sits one layer above the highest package it imports, so
    every arrow points down. Packages in one import cycle share a layer (their arrows are level)."""
    components = strongly_connected(packages, set(weights))
    layer: dict[str, int] = {}
    for component in components:  # reverse topological: what it imports is placed already
        below = [layer[b] for (a, b) in weights if a in component and b not in component]
        for p in component:
            layer[p] = 1 + max(below, default=-1)
    return layer


def columns(layer: dict[str, int], weights: Counter, sweeps: int = 9) -> dict[str, int]:
    """A column per package: the barycentre heuristic (each box moves towards the boxes it is
    wired to, which shortens arrows and uncrosses them) on a grid one column wider than the
    widest layer, so a box can stand where its arrows pull it. Starts from the role order."""
    rows: dict[int, list[str]] = {}
    for p in sorted(layer, key=lambda p: (list(COLOURS).index(role(p)), p)):
        rows.setdefault(layer[p], []).append(p)
    width = max(map(len, rows.values())) + 1
    col = {p: (width - len(row)) // 2 + i for row in rows.values() for i, p in enumerate(row)}
    for sweep in range(sweeps):  # alternately downwards and upwards, ending on a downward one
        for level in sorted(rows, reverse=sweep % 2 == 0):
            wanted = {p: barycentre(p, col, weights) for p in rows[level]}
            rows[level] = sorted(rows[level], key=lambda p: (wanted[p], col[p]))
            col.update(place(rows[level], wanted, width))
    return {p: c - min(col.values()) for p, c in col.items()}


def barycentre(p: str, col: dict[str, int], weights: Counter) -> float:
    near = [(col[b], n) for (a, b), n in weights.items() if a == p] + \
           [(col[a], n) for (a, b), n in weights.items() if b == p]
    return sum(c * n ** 0.5 for c, n in near) / sum(n ** 0.5 for _, n in near) if near else col[p]


def place(row: list[str], wanted: dict[str, float], width: int) -> dict[str, int]:
    """The nearest free columns, in the row's order, within the grid."""
    cols: list[int] = []
    for p in row:
        cols.append(max(round(wanted[p]), cols[-1] + 1 if cols else 0))
    for i in reversed(range(len(cols))):  # pushed back from the right edge
        cols[i] = min(cols[i], width - len(cols) + i, cols[i + 1] - 1 if i + 1 < len(cols) else width)
    return dict(zip(row, cols, strict=True))


# --- the picture -------------------------------------------------------------------------------

DX, DY, W, H = 3.4, 2.2, 1.9, 1.15  # grid step and box size, in data units: wide gaps for arrows


def ports(centre: dict[str, tuple[float, float]], weights: Counter) -> dict[tuple[str, str], tuple]:
    """Where each downward arrow leaves its box and enters the next: spread along the bottom and
    the top edges in the order of the other end, so arrow heads do not pile up on one point."""
    def spread(edges: list[tuple[str, str]], other: int, edge_y: float) -> dict:
        edges = sorted(edges, key=lambda e: centre[e[other]][0])
        return {e: (centre[e[1 - other]][0] + 0.8 * W * ((i + 0.5) / len(edges) - 0.5), edge_y)
                for i, e in enumerate(edges)}

    down = [e for e in weights if centre[e[0]][1] > centre[e[1]][1]]
    tails, heads = {}, {}
    for p, (_, y) in centre.items():
        tails |= spread([e for e in down if e[0] == p], 1, y - H / 2)
        heads |= spread([e for e in down if e[1] == p], 0, y + H / 2)
    return {e: (tails[e], heads[e]) for e in down}


def route(tail: tuple[float, float], head: tuple[float, float], centre: dict) -> list[tuple[float, float]]:
    """An arrow's points: straight, except where a box of a layer it passes stands in its way;
    there it bends into the gap beside that box, so an arrow never seems to end at a box it only
    passes."""
    points = [tail]
    for y_row in sorted({y for _, y in centre.values()}, reverse=True):
        if not head[1] + H / 2 < y_row < tail[1] - H / 2:
            continue
        x = x_on(points[-1], head, y_row)
        across = sorted((x_on(points[-1], head, y_row + H / 2), x_on(points[-1], head, y_row - H / 2)))
        in_way = sorted((abs(x - c[0]), c[0]) for c in centre.values()  # clipped corners count
                        if c[1] == y_row and across[0] < c[0] + W / 2 + 0.05 and across[1] > c[0] - W / 2 - 0.05)
        for _, x_box in in_way[:1]:  # one gap per row: the one beside the box it passes nearest
            # Out by the nearer side; a line that cut in deeper runs nearer the box, so the lines
            # that bend round one box keep their left-to-right order and do not cross there.
            side = -1 if x < x_box else 1
            x = x_box + side * (W / 2 + 0.15 + 0.55 * min(1.0, abs(x - x_box) / (W / 2 + 0.05)))
            points += [(x, y_row + H / 2 + 0.15), (x, y_row - H / 2 - 0.15)]
    return points + [head]


def x_on(a: tuple[float, float], b: tuple[float, float], y: float) -> float:
    """x of the straight line from a to b at height y."""
    return a[0] + (b[0] - a[0]) * (a[1] - y) / (a[1] - b[1])


def smooth(points: list[tuple[float, float]]):
    """A curve along a route: the corners are control points, the midpoints between them on it."""
    from matplotlib.path import Path as Curve

    if len(points) == 2:
        return Curve(points)
    verts, codes = [points[0]], [Curve.MOVETO]
    for corner, after in itertools.pairwise(points[1:-1]):
        verts += [corner, ((corner[0] + after[0]) / 2, (corner[1] + after[1]) / 2)]
        codes += [Curve.CURVE3, Curve.CURVE3]
    return Curve(verts + [points[-2], points[-1]], codes + [Curve.CURVE3, Curve.CURVE3])


def label_spots(counts: list[tuple]) -> list[tuple[tuple[float, float], int]]:
    """Where each arrow's count goes: on its last stretch, just above its head, or further up
    the arrow where that spot is taken by another count."""
    placed: list[tuple[tuple[float, float], int]] = []
    for before, head, n in sorted(counts, key=lambda c: c[1][0]):
        for rise in (0.3, 0.55, 0.8, 1.05, 1.3):
            spot = (x_on(head, before, head[1] + rise), head[1] + rise)
            if all(abs(spot[0] - x) > 0.32 or abs(spot[1] - y) > 0.2 for (x, y), _ in placed):
                break
        placed.append((spot, n))
    return placed


def draw(lines: dict[str, int], weights: Counter, layer: dict[str, int], cycles: list[list[str]]) -> None:
    import matplotlib
    matplotlib.use("Agg")  # a file, never a window: this runs on headless machines too
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    col = columns(layer, weights)
    centre = {p: (col[p] * DX, layer[p] * DY) for p in layer}
    top, right = max(layer.values()), max(col.values()) * DX
    fig, ax = plt.subplots(figsize=(17, 2.0 * (top + 1) + 1.6))
    boxes = draw_boxes(ax, centre, lines)
    draw_arrows(ax, centre, boxes, weights)
    for level in range(top + 1):
        ax.text(-W / 2 - 0.3, level * DY, f"layer {level}", ha="right", va="center", fontsize=9, color="#777777")
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#333333", label=r) for r, c in COLOURS.items()],
              loc="upper right", fontsize=10, frameon=False)
    cycles_text = "; ".join(" ⇄ ".join(m.removeprefix("passersby.") for m in c) for c in cycles) or "none"
    ax.set_title(f"passersby: {len(lines)} files, {sum(lines.values()):,} lines.   Arrow = imports; its width and "
                 "number: how many module→module imports.   Red: packages that import each other.\n"
                 f"Import cycles between modules: {cycles_text}", fontsize=11)
    ax.set_xlim(-W / 2 - 1.3, right + W / 2 + 0.8)
    ax.set_ylim(-H / 2 - 0.2, top * DY + H / 2 + 0.2)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(PNG, dpi=110)
    plt.close(fig)


def draw_boxes(ax, centre: dict[str, tuple[float, float]], lines: dict[str, int]) -> dict:
    from matplotlib.patches import FancyBboxPatch

    boxes = {}
    for p, (x, y) in centre.items():
        mods = [m for m in lines if package_of(m) == p]
        boxes[p] = FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.04,rounding_size=0.12",
                                  facecolor=COLOURS[role(p)], edgecolor="#333333", linewidth=1.2, zorder=3)
        ax.add_patch(boxes[p])
        ax.text(x, y + 0.22, p + "/" * (len(mods) > 1), ha="center", va="center", fontsize=12,
                fontweight="bold", zorder=4)
        ax.text(x, y - 0.2, f"{len(mods)} module{'s' * (len(mods) > 1)}\n{sum(lines[m] for m in mods):,} lines",
                ha="center", va="center", fontsize=9, zorder=4, linespacing=1.3)
    return boxes


def draw_arrows(ax, centre: dict[str, tuple[float, float]], boxes: dict, weights: Counter) -> None:
    from matplotlib.patches import FancyArrowPatch

    counts = []
    for (a, b), (tail, head) in ports(centre, weights).items():
        n, points = weights[a, b], route(tail, head, centre)
        ax.add_patch(FancyArrowPatch(path=smooth(points), arrowstyle="-|>", mutation_scale=9 + 2 * n ** 0.5,
                                     linewidth=0.5 + 0.5 * n ** 0.5, color="#4a4a4a", alpha=0.6, zorder=2))
        if n > 1:  # a "1" on every thin arrow would bury the picture
            counts.append((points[-2], head, n))
    for (x, y), n in label_spots(counts):
        ax.text(x, y, str(n), fontsize=8, ha="center", va="center", zorder=5,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    for a, b in (e for e in weights if centre[e[0]][1] == centre[e[1]][1]):  # level: only inside a cycle
        ax.add_patch(FancyArrowPatch(centre[a], centre[b], patchA=boxes[a], patchB=boxes[b], arrowstyle="-|>",
                                     mutation_scale=11, connectionstyle="arc3,rad=0.3", color="#b03030", zorder=2))


def main() -> None:
    lines, edges = scan()
    print(f"{len(lines)} files, {sum(lines.values())} lines under passersby/")
    cycles = [c for c in strongly_connected(sorted(lines), set(edges)) if len(c) > 1]
    print(f"import cycles between modules (any import): {len(cycles) or 'none'}")
    for c in cycles:
        print("  " + ", ".join(c))
        for a, b in sorted(e for e in edges if e[0] in c and e[1] in c):
            print(f"    {a} -> {b} ({edges[a, b]})")
    # A cycle closed only by lazy or TYPE_CHECKING imports never runs into a half-imported module.
    at_import = [c for c in strongly_connected(sorted(lines), {e for e, how in edges.items() if how == "top"})
                 if len(c) > 1]
    print(f"of which cycles at import time (module-level imports only): {at_import or 'none'}")
    weights = Counter((package_of(a), package_of(b)) for a, b in edges if package_of(a) != package_of(b))
    packages = sorted({package_of(m) for m in lines})
    layer = layers(packages, weights)
    for level in sorted(set(layer.values()), reverse=True):
        print(f"layer {level}: {', '.join(p for p in packages if layer[p] == level)}")
    draw(lines, weights, layer, cycles)
    print(f"wrote {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
