"""Decide whether a model's final answer is mathematically equivalent to the ground truth.

Three checks, cheapest first, in the manner of the Dr. GRPO grader: equal MATH-style normal forms;
element-wise ``sympy`` equality of the plain-text forms (tuples and intervals compared element by
element, brackets included); and, when ``fast=False``, ``math-verify``'s LaTeX-aware comparison.
Model output is untrusted text, and a reward a policy can game teaches it the exploit. So it reaches
``sympy``'s parser only after a character and name whitelist; numbers whose exact value or evaluation would be
too large (``9^{9^{9}}``, ``1e999999999``) are refused before anything is evaluated, because big-integer and
mpmath arithmetic run in C, where no time limit can interrupt them; every symbolic step runs under a time limit
(on the main thread); and a numeric comparison needs both values finite, with a tolerance relative to the
ground truth alone (an answer that overflows to infinity would otherwise widen the tolerance to infinity).
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
from collections.abc import Iterator

import sympy
from sympy.parsing import sympy_parser

from cs336_alignment.math_answer import last_boxed_content, normalize_for_sympy, normalize_mathd

_SAFE_CHARS = re.compile(r"[0-9a-zA-Z+\-*/().,=\s]*")
_ALLOWED_NAMES = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "ln", "exp", "i", "e"}
_TRANSFORMS = sympy_parser.standard_transformations + (
    sympy_parser.implicit_multiplication_application,
    sympy_parser.convert_xor,
)
_CANONICAL_INTEGER = re.compile(r"0|-?[1-9][0-9]*")  # one spelling per integer: no sign on 0, no leading zeros
_MAX_EXPR_CHARS = 120
_MAX_ANSWER_CHARS = 1000  # far beyond any real final answer; longer ones only match the truth verbatim
_MAX_LOG10_MAGNITUDE = 10_000.0  # |log10 |value|| of any subexpression: 10^{400} passes, 9^{9^{9}} does not
_MAX_EXACT_DIGITS = 10_000.0  # digits exact (integer / rational) arithmetic may need
_SYMPY_SECONDS = 2.0
_RELATIVE_TOLERANCE = 1e-6


class _SympyTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt runaway ``sympy`` work; only possible on the main thread (SIGALRM), elsewhere unlimited."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _SympyTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _safe_to_parse(expr: str) -> bool:
    if len(expr) > _MAX_EXPR_CHARS or not _SAFE_CHARS.fullmatch(expr) or "__" in expr:
        return False
    names = re.findall(r"[a-zA-Z]+", expr)
    if any(len(n) > 1 and n.lower() not in _ALLOWED_NAMES for n in names):
        return False
    if len({n for n in names if len(n) == 1 and n.lower() not in _ALLOWED_NAMES}) > 2:
        return False
    # a float literal's digits set its precision: 1e999999999 would be a billion-digit number
    return not re.search(r"[\d.][eE][+-]?\d{3}", expr)


def _pow10(x: float) -> float:
    return math.inf if x > 300 else 10.0**x


def _size_bounds(node: sympy.Basic) -> tuple[float, float]:
    """Upper bounds ``(|log10 |value||, exact digits)`` of an *unevaluated* expression, computed from its tree
    without doing its arithmetic: how large evaluating it could get (symbols count as magnitude 10)."""
    if node.is_Rational:
        p, q = abs(int(node.p)), int(node.q)
        magnitude = abs(math.log10(p) - math.log10(q)) if p else 0.0
        return magnitude, float(len(str(p)) + len(str(q)))
    if node.is_Float:
        value = abs(float(node))
        return (abs(math.log10(value)) if 0 < value < math.inf else 0.0), 17.0
    if not node.args:  # symbols, pi, E, I, oo
        return 1.0, 1.0
    bounds = [_size_bounds(arg) for arg in node.args]
    if node.is_Pow:
        (base_mag, base_digits), (exp_mag, _) = bounds
        times = _pow10(exp_mag)  # |exponent| <= 10^exp_mag
        return times * max(base_mag, 1.0), times * base_digits
    magnitude = sum(m for m, _ in bounds) + math.log10(len(bounds))
    digits = sum(d for _, d in bounds) + len(bounds)
    if isinstance(node, (sympy.exp, sympy.sin, sympy.cos, sympy.tan)):  # |f(z)| <= e^|z|; huge z costs precision
        magnitude = math.log10(math.e) * _pow10(magnitude)
        digits += magnitude
    return magnitude, digits


def _small_enough(expr: str) -> bool:
    tree = sympy_parser.parse_expr(expr.replace("ln(", "log("), transformations=_TRANSFORMS, evaluate=False)
    magnitude, digits = _size_bounds(tree)
    return magnitude <= _MAX_LOG10_MAGNITUDE and digits <= _MAX_EXACT_DIGITS  # False for nan too


def _parse(expr: str) -> sympy.Expr:
    expr = expr.replace("ln(", "log(")
    return sympy_parser.parse_expr(expr, transformations=_TRANSFORMS, evaluate=True)


def _finite(z: complex) -> bool:
    return math.isfinite(z.real) and math.isfinite(z.imag)


def _sympy_equal(truth: str, given: str) -> bool:
    """Symbolic equality, else numeric equality within a tolerance relative to the (finite) truth."""
    if not (_safe_to_parse(truth) and _safe_to_parse(given)):
        return False
    try:
        with _time_limit(_SYMPY_SECONDS):
            if not (_small_enough(truth) and _small_enough(given)):
                return False
            et, eg = _parse(truth), _parse(given)
            if isinstance(et, sympy.Equality) or isinstance(eg, sympy.Equality):
                return et == eg
            diff = et - eg
            if diff == 0 or sympy.simplify(diff) == 0:
                return True
            if et.is_Rational and eg.is_Rational:
                return False  # exact numbers that differ: no tolerance (10^{-400} is not 0)
            if not diff.free_symbols:
                vt, vg = complex(et.evalf()), complex(eg.evalf())
                return _finite(vt) and _finite(vg) and abs(vt - vg) <= _RELATIVE_TOLERANCE * max(1.0, abs(vt))
            return False
    except Exception:  # unparsable or unsupported expressions are simply "not equal"
        return False


def _is_wrapped(expr: str) -> bool:
    """Whether the first bracket closes only at the last character: ``(a,b)`` yes, ``(x-1)(x+1)`` no."""
    if len(expr) < 3 or expr[0] not in "([" or expr[-1] not in ")]":
        return False
    depth = 0
    for ch in expr[:-1]:
        depth += ch in "(["
        depth -= ch in ")]"
        if depth == 0:
            return False
    return True


def _split_elements(expr: str) -> list[str]:
    """Split ``(1,2)`` / ``[a,b)`` / ``1,2,3`` at top-level commas; brackets are kept by the caller."""
    inner = expr[1:-1] if _is_wrapped(expr) else expr
    parts, depth, current = [], 0, ""
    for ch in inner:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p != ""]


def grade_answer_mathd(given: str, ground_truth: str) -> bool:
    """Equal under the MATH dataset's string normalisation."""
    return normalize_mathd(given) == normalize_mathd(ground_truth)


def grade_answer_sympy(given: str, ground_truth: str) -> bool:
    """Element-wise symbolic equality of the plain-text forms (PRM800K-style)."""
    truth, pred = normalize_for_sympy(ground_truth), normalize_for_sympy(given)
    if not truth or not pred:
        return False
    if truth == pred:
        return True
    truth_parts, pred_parts = _split_elements(truth), _split_elements(pred)
    if len(truth_parts) != len(pred_parts):
        return False
    if len(truth_parts) > 1 and (truth[0] != pred[0] or truth[-1] != pred[-1]):
        return False  # (a, b) is not [a, b]
    return all(_element_equal(t, p) for t, p in zip(truth_parts, pred_parts))


def _element_equal(truth: str, given: str) -> bool:
    """One element's equality. Two different integer literals in canonical form are different numbers, which is
    what ``sympy`` would conclude after parsing both (about 4 ms): most wrong GSM8K answers end here."""
    if truth == given:
        return True
    if _CANONICAL_INTEGER.fullmatch(truth) and _CANONICAL_INTEGER.fullmatch(given):
        return False
    return _sympy_equal(truth, given)


def grade_answer_math_verify(given: str, ground_truth: str) -> bool:
    """``math-verify``'s LaTeX-aware comparison: slower, recalls answers the string checks miss."""
    from math_verify import parse, verify

    on_main = threading.current_thread() is threading.main_thread()
    timeout = 3 if on_main else None
    try:
        gold = parse(f"${ground_truth}$", parsing_timeout=timeout)
        pred = parse(f"${given}$", parsing_timeout=timeout)
        return bool(gold and pred and verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math-verify raises on inputs it cannot parse; treat as not equivalent
        return False


def grade(given: str, ground_truth: str, fast: bool = True) -> bool:
    r"""Whether ``given`` (an extracted answer) equals ``ground_truth`` (which may contain ``\boxed{}``)."""
    if "\\boxed" in ground_truth:
        ground_truth = last_boxed_content(ground_truth) or ground_truth
    given = " ".join(given.split())  # whitespace runs carry no meaning and would slow every pattern below
    if not given:
        return False
    if len(given) > _MAX_ANSWER_CHARS:
        return given == ground_truth.strip()
    correct = grade_answer_mathd(given, ground_truth) or grade_answer_sympy(given, ground_truth)
    if not correct and not fast:
        correct = grade_answer_math_verify(given, ground_truth)
    return correct
