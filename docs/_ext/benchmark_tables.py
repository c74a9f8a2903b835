"""``.. benchmark-results:: path.md``: show a benchmark's Markdown result file
as rendered reStructuredText (headings as rubrics, tables as tables, bullet
lists, paragraphs and the figures it names), instead of pasting it raw.

The benchmark scripts write Markdown to ``benchmarks/results/`` (readable on
a code host and in a terminal). Only the subset they write is understood:
``#`` headings, ``|``-tables with a ``|---|`` rule, ``- `` bullets,
``![alt](file.png)`` images and paragraphs with ``**bold**`` and
```code``` spans. Options: ``:skip-sections:`` (comma-separated heading
titles whose sections are left out, e.g. the project's internal targets) and
``:drop-title:`` (leave out the first ``#`` heading).
"""

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$")
_HEADING = re.compile(r"^(#+)\s+(.*)$")
# remarks meant for the developers, not the readers: targets and references
# to internal notes
_INTERNAL = re.compile(
    r"\s*\((?:target[^)]*|[\w./-]+\.md[^)]*)\)|\s*\bTargets?: .*?\.(?=\s|$)"
)


def _escape(text):
    """Plain Markdown text -> reST text (specials that reST would parse)."""
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    # a word ending in "_" (a fitted attribute: memories_) is a reST reference
    text = re.sub(r"(?<=\w)_(?!\w)", r"\\_", text)
    return re.sub(r"(?<![\w*])\*(?!\*)", r"\\*", text)


def _inline(text):
    """Markdown inline markup -> reST (code spans become literals)."""
    text = _INTERNAL.sub("", text)
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for k, part in enumerate(parts):
        if len(part) > 2 and part.startswith("`") and part.endswith("`"):
            literal = f"``{part[1:-1]}``"
            # reST inline markup must be delimited by space or punctuation
            before = parts[k - 1][-1:] if k else ""
            after = parts[k + 1][:1] if k + 1 < len(parts) else ""
            if before and (before.isalnum() or before in "_"):
                literal = "\\ " + literal
            if after and (after.isalnum() or after in "_"):
                literal = literal + "\\ "
            out.append(literal)
        else:
            out.append(_escape(part))
    return "".join(out)


def _table(rows):
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    header, body = cells[0], [r for r in cells[2:]]
    width = len(header)
    lines = [".. list-table::", "   :header-rows: 1", "   :class: benchmark-table", ""]
    for row in [header, *body]:
        row = (row + [""] * width)[:width]
        lines.append(f"   * - {_inline(row[0]) or ' '}")
        lines += [f"     - {_inline(c) or ' '}" for c in row[1:]]
    return lines + [""]


def markdown_to_rst(text, *, skip_sections=(), drop_title=True, base=""):
    """The reST for one results file (a list of lines)."""
    out, lines, i = [], text.splitlines(), 0
    skipping_level = None
    first_heading = True
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if heading:
            level, title = len(heading.group(1)), _INTERNAL.sub("", heading.group(2))
            if skipping_level is not None and level <= skipping_level:
                skipping_level = None
            if title.strip() in skip_sections:
                skipping_level = level
            elif skipping_level is None and not (first_heading and drop_title):
                out += [f".. rubric:: {_inline(title)}", ""]
            first_heading = False
            i += 1
            continue
        if skipping_level is not None:
            i += 1
            continue
        if line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            out += _table(rows)
            continue
        image = _IMAGE.match(line.strip())
        if image:
            out += [f".. image:: {base}{image.group(2)}", f"   :alt: {image.group(1)}"]
            out += ["   :class: benchmark-figure", ""]
            i += 1
            continue
        if line.startswith("- "):
            while i < len(lines) and (
                lines[i].startswith("- ") or lines[i].startswith("  ")
            ):
                item = lines[i]
                prefix = "* " if item.startswith("- ") else "  "
                out.append(prefix + _inline(item[2:].strip()))
                i += 1
            out.append("")
            continue
        if line.strip():
            paragraph = []
            while (
                i < len(lines)
                and lines[i].strip()
                and not (lines[i].lstrip().startswith(("|", "- ", "#", "![")))
            ):
                paragraph.append(_inline(lines[i].strip()))
                i += 1
            out += [" ".join(paragraph), ""]
            continue
        i += 1
    return out


class BenchmarkResults(Directive):
    required_arguments = 1
    option_spec = {
        "skip-sections": directives.unchanged,
        "drop-title": directives.flag,
        "start-after": directives.unchanged,
        "end-before": directives.unchanged,
    }
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        rel, path = env.relfn2path(self.arguments[0])
        env.note_dependency(rel)
        text = Path(path).read_text(encoding="utf-8")
        if "start-after" in self.options:
            text = text.split(self.options["start-after"], 1)[1]
        if "end-before" in self.options:
            text = text.split(self.options["end-before"], 1)[0]
        skip = [s.strip() for s in self.options.get("skip-sections", "").split(",")]
        base = str(Path(self.arguments[0]).parent) + "/"
        rst = markdown_to_rst(
            text,
            skip_sections=[s for s in skip if s],
            drop_title="drop-title" in self.options,
            base=base,
        )
        container = nodes.container(classes=["benchmark-results"])
        self.state.nested_parse(
            StringList(rst, source=path), self.content_offset, container
        )
        return [container]


def setup(app):
    app.add_directive("benchmark-results", BenchmarkResults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
