"""How LaTeX and Markdown write the few things that differ between them, and the two documents.

`Style` formats one cell (an error with its spread, a difference with its interval, hours, a
name); `latex_table` / `markdown_table` wrap rows into a booktabs table (needs only
`\\usepackage{booktabs}`) or a GitHub Markdown table with its caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

GENERATED_BY = "sdnet.report.render_tables"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (variant names carry underscores).

    Also < > |, which print as other glyphs in LaTeX's default font encoding.
    """
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                "|": r"\textbar{}"}
    return "".join(specials.get(char, char) for char in str(text))


def missing(value: float | None) -> bool:
    """None or NaN: a cell with nothing to show."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "--" if missing(value) else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    """'+0.25', '-1.16', '0.00' (no '-0.00')."""
    text = f"{value:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


class Style:
    """One output format: LaTeX (latex=True) or GitHub Markdown."""

    def __init__(self, latex: bool) -> None:
        self.latex = latex
        self.pct = "\\%" if latex else "%"
        self.pm = "$\\pm$" if latex else "±"
        self.marker = "$^{*}$" if latex else "*"  # a difference significant after Holm
        self.dagger = "$^{\\dagger}$" if latex else "†"  # a paper number with a note
        self.p_symbol = "$p_L$" if latex else "p_L"

    def less_than(self, value: float) -> str:
        """'p < 0.05' ('<' outside math mode prints as another glyph in LaTeX)."""
        return f"$p < {value:g}$" if self.latex else f"p < {value:g}"

    def text(self, value: str) -> str:
        return latex_escape(value) if self.latex else value.replace("|", "\\|")

    def p_last(self, value: float) -> str:
        return f"$p_L = {value:g}$" if self.latex else f"p_L = {value:g}"

    def header(self, *lines: str) -> str:
        """A column name on one or more lines (LaTeX stacks them to keep columns narrow)."""
        if not self.latex or len(lines) == 1:
            return " ".join(lines)
        # `\\` reads a following "[" as its optional argument: "{}" stops it
        stacked = " \\\\ ".join(("{}" + line) if line.startswith("[") else line for line in lines)
        return "\\begin{tabular}[b]{@{}c@{}}" + stacked + "\\end{tabular}"

    def error(self, mean: float, std: float, n: int | None, bold: bool) -> str:
        """'5.25 ± 0.12', with '(n)' unless the column header gives n; one seed: no std."""
        pm = " \\pm " if self.latex else " ± "
        body = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f}{pm}{std:.2f}"
        if self.latex:
            body = f"$\\mathbf{{{body}}}$" if bold else f"${body}$"
        elif bold:
            body = f"**{body}**"
        return body if n is None else f"{body} ({n})"

    def diff(self, diff: float | None, low: float | None, high: float | None,
             marked: bool, stacked: bool = False) -> str:
        """'-1.16 [-1.45, -0.87]' (+ the marker); the difference alone without an interval.

        stacked: in LaTeX, the interval on a second line under the difference (narrow column).
        """
        if missing(diff):
            return "--"
        mark = self.marker if marked else ""
        if missing(low) or missing(high):
            return f"${_signed(diff)}${mark}" if self.latex else _signed(diff) + mark
        interval = f"[{low:.2f}, {high:.2f}]"
        if not self.latex:
            return f"{_signed(diff)} {interval}{mark}"
        if stacked:  # top-aligned: the difference on the row's baseline, the interval below
            return f"\\begin{{tabular}}[t]{{@{{}}c@{{}}}}${_signed(diff)}${mark} \\\\ " \
                   f"${interval}$\\end{{tabular}}"
        return f"${_signed(diff)}\\;{interval}${mark}"

    def hours(self, hours: float) -> str:
        """Hours to two decimals; a few seconds show as '<0.01' (in math mode for LaTeX)."""
        if hours >= 0.005:
            return f"{hours:.2f}"
        return "$<0.01$" if self.latex else "<0.01"

    def paper(self, value: float | None, noted: bool) -> str:
        return fmt_number(value) + (self.dagger if noted and not missing(value) else "")


def latex_row(cells: Sequence[str]) -> str:
    return " & ".join(cells) + " \\\\"


def latex_blocks(rows: list[list[str]], keys: int, columns: int,
                 blank_repeats: int = 0) -> list[str]:
    """Table rows under an italic heading row whenever their first `keys` cells change.

    The key cells leave the rows (saving columns); the next `blank_repeats` cells are left
    blank where they repeat the row above, as usual in booktabs tables.
    """
    lines: list[str] = []
    previous: list[str] | None = None
    for row in rows:
        if previous is None or row[:keys] != previous[:keys]:
            if previous is not None:
                lines.append("\\addlinespace")
            heading = f"\\emph{{{', '.join(row[:keys])}}}"
            lines.append(latex_row([f"\\multicolumn{{{columns}}}{{@{{}}l}}{{{heading}}}"]))
            previous = None
        shown = [("" if previous is not None and row[: keys + i + 1] == previous[: keys + i + 1]
                  else cell) if i < blank_repeats else cell
                 for i, cell in enumerate(row[keys:])]
        lines.append(latex_row(shown))
        previous = row
    return lines


# Height of one table float, in lines of the \\footnotesize table (a row whose cell stacks two
# lines counts twice; a caption counts CAPTION_CHARS characters of its source per line).
# Measured with pdflatex in a plain one-column article on US letter (the shortest default
# page): about 49 lines fit under a header of stacked column names; 40 leaves room for a
# taller header or a smaller page. A longer table is split into several floats, each a
# "continued" part, instead of running off the page.
MAX_BODY_LINES = 40
CAPTION_CHARS = 95
_HEADING = "\\multicolumn"
_STACKED = "\\begin{tabular}[t]"


def _height(line: str) -> int:
    if line == "\\addlinespace":
        return 0
    return 2 if _STACKED in line else 1


def caption_lines(caption: str) -> int:
    """About how many lines a caption takes (its LaTeX source: an overestimate)."""
    return max(1, math.ceil(len(caption) / CAPTION_CHARS))


def split_body(body: list[str], max_lines: int = MAX_BODY_LINES,
               first_lines: int | None = None) -> list[list[str]]:
    """Cut a latex_blocks body into parts of at most `max_lines` lines (`first_lines` for the
    first part, which carries the long caption), a heading never last in a part; a part that
    starts inside a group repeats its heading, marked (continued), and the first cell its
    first row left blank as a repeat."""
    parts: list[list[str]] = [[]]
    used, heading, first_cell = 0, None, ""
    limit = max_lines if first_lines is None else first_lines
    for i, line in enumerate(body):
        is_heading = line.startswith(_HEADING)
        # a heading with its first row must fit, or it moves to the next part
        need = _height(line) + (_height(body[i + 1]) if is_heading and i + 1 < len(body) else 0)
        if used and used + need > limit:
            parts.append([])
            used, limit = 0, max_lines
            if not is_heading and heading is not None and line != "\\addlinespace":
                parts[-1].append(heading.replace("}} \\\\", " (continued)}} \\\\", 1))
                used = 1
                if line.startswith(" & "):
                    line = first_cell + line
        if is_heading:
            heading = line
        elif " & " in line and not line.startswith(" & "):
            first_cell = line.split(" & ", 1)[0]
        if line == "\\addlinespace" and not parts[-1]:
            continue  # no space above a part's first heading
        parts[-1].append(line)
        used += _height(line)
    return [part for part in parts if part] or [[]]


def latex_table(comment: str, caption: str, label: str, colspec: str,
                header: list[str], body: list[str], title: str = "Table",
                max_lines: int = MAX_BODY_LINES) -> str:
    """Bare table environments that need only booktabs; \\input{} the file where the table
    goes. A body taller than a page becomes several floats: the first has the caption and
    label, the others the caption "<title> (continued, part k of n)." and `<label>-<k>`."""
    short = f"{title} (continued, part 99 of 99)."
    parts = split_body(body, max_lines - caption_lines(short) + 1,
                       max_lines - caption_lines(caption) + 1)
    lines = [
        f"% {comment}, generated by {GENERATED_BY}.",
        "% Needs only \\usepackage{booktabs}; \\input{} this file where the table goes.",
    ]
    for k, part in enumerate(parts, start=1):
        text, name = (caption, label) if k == 1 else (
            f"{title} (continued, part {k} of {len(parts)}).", f"{label}-{k}")
        lines += [
            "\\begin{table}[tbp]",
            "\\centering",
            "\\footnotesize",
            "\\setlength{\\tabcolsep}{3.5pt}",
            f"\\caption{{{text}}}",
            f"\\label{{{name}}}",
            f"\\begin{{tabular}}{{@{{}}{colspec}@{{}}}}",
            "\\toprule",
            *header,
            "\\midrule",
            *part,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
        ]
    return "\n".join([*lines, ""])


def markdown_table(title: str, caption: str, header: list[str], body: list[list[str]]) -> str:
    """A GitHub Markdown table under a bold title and its caption."""
    from tabulate import tabulate

    table = tabulate(body, headers=header, tablefmt="github", disable_numparse=True)
    note = f"<!-- generated by {GENERATED_BY} -->"
    return f"{note}\n\n**{title}.** {caption}\n\n{table}\n"
