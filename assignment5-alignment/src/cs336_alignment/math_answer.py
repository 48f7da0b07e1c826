"""Extract a final answer from model text and normalise it to a canonical string.

Two normalisations, as in the Dr. GRPO grader: ``normalize_mathd`` is the string clean-up of the MATH
dataset's own checker (LaTeX spelling variants, units, ``0.5`` vs ``\\frac{1}{2}``), and
``normalize_for_sympy`` turns an answer into plain text that ``sympy`` can parse (LaTeX rendered by
``pylatexenc``, unit words and thousands separators removed).
"""

from __future__ import annotations

import re

from pylatexenc import latex2text

_UNIT_WORDS = (
    "degrees",
    "degree",
    "cm",
    "centimeters",
    "meters",
    "meter",
    "mph",
    "inches",
    "inch",
    "feet",
    "foot",
    "ft",
    "hours",
    "hour",
    "minutes",
    "minute",
    "seconds",
    "second",
    "units",
    "unit",
    "sq",
    "square",
    "cents",
    "dollars",
    "dollar",
    "km",
    "kg",
    "grams",
    "pounds",
    "miles",
    "mile",
    "years",
    "days",
    "p.m.",
    "a.m.",
)
_UNIT_PATTERN = re.compile(r"\s*\b(?:" + "|".join(re.escape(u) for u in _UNIT_WORDS) + r")\b\s*$")


def last_boxed_content(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``, ``\boxed x``) in ``text``, braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:]
    if rest.startswith("\\boxed ") and "{" not in rest.split(" ", 1)[1][:1]:
        return rest[len("\\boxed ") :].split("$")[0].strip()
    open_at = rest.find("{")
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(rest)):
        if rest[i] == "{":
            depth += 1
        elif rest[i] == "}":
            depth -= 1
            if depth == 0:
                return rest[open_at + 1 : i]
    return None


def _fix_fracs(s: str) -> str:
    r"""``\frac12`` -> ``\frac{1}{2}`` and ``\frac1{72}`` -> ``\frac{1}{72}``."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b = part[0], part[1]
        if b == "{":
            out += "{" + a + "}" + part[1:]
        else:
            out += "{" + a + "}{" + b + "}" + part[2:]
    return out


def _fix_slash_fraction(s: str) -> str:
    match = re.fullmatch(r"(-?\d+)/(\d+)", s)
    return f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}" if match else s


def _fix_sqrt(s: str) -> str:
    r"""``\sqrt3`` -> ``\sqrt{3}``."""
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def _remove_right_units(s: str) -> str:
    r"""Drop a trailing ``\text{ units}`` (the MATH checker's rule)."""
    if "\\text{ " in s:
        return s.split("\\text{ ")[0]
    return s


def normalize_mathd(answer: str) -> str:
    """The MATH dataset's string normalisation: two answers are equal when their normal forms are."""
    s = answer.strip().replace("\n", "").rstrip(".")
    s = s.replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _remove_right_units(s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    # "x = 5" -> "5" when the left side is a short name
    if len(s.split("=")) == 2 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_slash_fraction(s)


def _strip_text_wrappers(s: str) -> str:
    return re.sub(r"\\(?:text|textbf|mathrm|mbox|operatorname)\{([^{}]*)\}", r"\1", s)


def normalize_for_sympy(answer: str | None) -> str | None:
    """Plain-text form of an answer for ``sympy`` parsing (the PRM800K grader's normalisation)."""
    if answer is None:
        return None
    # one space per whitespace run first: the unit pattern below backtracks over a run, quadratic in its length
    s = re.sub(r"\s+", " ", answer).strip()
    match = re.fullmatch(r"\\text\{(.*)\}", s)
    if match:
        s = match.group(1)
    s = _strip_text_wrappers(s)
    s = s.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    s = s.replace(" or ", " , ").replace(" and ", " , ")
    s = s.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "")
    s = _fix_sqrt(s.replace("tfrac", "frac").replace("dfrac", "frac"))
    for _ in range(2):
        s = _UNIT_PATTERN.sub("", s)
    s = re.sub(r"^([a-zA-Z]\w{0,2})\s*=\s*", "", s)  # "x = 3" -> "3"
    s = re.sub(r"(\d),(\d\d\d)(?!\d)", r"\1\2", s)  # thousands separators
    s = re.sub(r"(\d),(\d\d\d)(?!\d)", r"\1\2", s)
    if "\\" in s or "{" in s:
        try:
            s = latex2text.LatexNodes2Text(math_mode="verbatim").latex_to_text(_latex_to_plain_operators(s))
        except Exception:  # pylatexenc raises assorted errors on malformed LaTeX; the raw text is still usable
            pass
    s = s.replace("√", "sqrt").replace("π", "pi").replace("∞", "oo").replace("∪", "U").replace("·", "*")
    s = s.replace("×", "*").replace("{", "(").replace("}", ")").replace("^", "**")
    s = re.sub(r"\s+", "", s).rstrip(".")
    s = re.sub(r"(?<!\d)\.(\d)", r"0.\1", s)
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s.lower() if re.fullmatch(r"[A-Za-z]", s) else s


def _latex_to_plain_operators(s: str) -> str:
    r"""Rewrite the LaTeX constructs pylatexenc would otherwise render ambiguously (``\frac``, ``\sqrt``)."""
    s = _fix_fracs(s)
    for _ in range(4):
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        new = re.sub(r"\\sqrt\[([^{}\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", new)
        new = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", new)
        if new == s:
            break
        s = new
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/").replace("\\pi", "pi")
    s = s.replace("\\infty", "oo").replace("\\cup", "U")
    return s
