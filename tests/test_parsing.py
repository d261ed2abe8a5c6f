"""Tests for derive.parsing (safe loss strings), derive._validate and derive.errors."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pickle
import time

import pytest
import sympy
import sympy.parsing.sympy_parser

from derive import _validate as V
from derive import parsing
from derive.errors import DeriveInputError, LossParseError, NotAGradientField
from derive.parsing import MAX_DEPTH, MAX_LENGTH, parse_loss

x, y, z = sympy.symbols("x y z", real=True)


def _one_line_error(exc_info, name="loss"):
    message = str(exc_info.value)
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- safety

INJECTIONS = [
    "__import__('os').system('ls')",
    "().__class__.__bases__[0]",
    "().__class__.__bases__[0].__subclasses__()",
    "x.real",
    "x.__class__",
    "lambda: 1",
    "(lambda: 1)()",
    "[x for x in y]",
    "{x: 1}",
    "(x, y)",
    "'abc'",
    "b'abc'",
    "f'{x}'",
    "x if y else z",
    "x < y",
    "x == y",
    "x and y",
    "not x",
    "~x",
    "x // y",
    "x % y",
    "x @ y",
    "x | y",
    "eval('1')",
    "exec('1')",
    "open('f')",
    "getattr(x, 'y')",
    "globals()",
    "os.system('ls')",
    "x[0]",
    "__builtins__",
    "_x",
    "None",
    "True * x",
    "1j * x",
    "exp(x=1)",
    "exp(*x)",
    "exp(x)(y)",
    "x(y)",
    "...",
    "x; y",
    "import os",
    "x = 1",
    "(y := 1)",
    "x\x00",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_refuses_everything_outside_the_grammar(text):
    with pytest.raises(LossParseError) as exc_info:
        parse_loss(text)
    _one_line_error(exc_info)


def test_injection_has_no_side_effect(tmp_path):
    target = tmp_path / "pwned_gdflows"
    with pytest.raises(LossParseError) as exc_info:
        parse_loss(f"__import__('os').system('touch {target}')")
    assert str(exc_info.value) == "loss: function '__import__' is not allowed"
    assert not target.exists()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("x.real", "attribute access is not allowed ('.real')"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("'abc' * x", "string literals are not allowed"),
        ("x < y", "comparisons are not allowed"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("__class__", "'__class__' is not allowed"),
        ("exp + x", "'exp' is a function name"),
        ("x ^ y // 2", "operator '//' is not allowed"),
    ],
)
def test_refusal_names_what_was_refused(text, fragment):
    with pytest.raises(LossParseError, match=r"^loss: ") as exc_info:
        parse_loss(text)
    assert fragment in str(exc_info.value)


def test_error_names_the_given_argument():
    with pytest.raises(LossParseError, match=r"^objective: function 'open'"):
        parse_loss("open('f')", name="objective")


def test_limits_give_clear_errors_not_recursion_errors():
    with pytest.raises(LossParseError, match="too long"):
        parse_loss("x+" * (MAX_LENGTH // 2) + "x")
    deep_texts = [
        "(" * (MAX_DEPTH + 50) + "x" + ")" * (MAX_DEPTH + 50),
        "(" * 4000 + "x" + ")" * 4000,
        "exp(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
        "-" * 5000 + "x",
        "x" + "**x" * 3000,
    ]
    for text in deep_texts:
        with pytest.raises(LossParseError, match="^loss: .*nested too deeply"):
            parse_loss(text)
    # Moderate depth and long flat chains are fine.
    assert parse_loss("(" * 50 + "x" + ")" * 50)[0] == x
    total = parse_loss("+".join(f"x{i}**2" for i in range(500)))[0]
    assert len(total.args) == 500


@pytest.mark.parametrize(
    "text", ["9**9**9**9", "(2*x)**(10**8)", "2**(10**9/3) * x", "gamma(10**9) * x"]
)
def test_refuses_exact_arithmetic_blowups_quickly(text):
    start = time.perf_counter()
    with pytest.raises(LossParseError, match=r"^loss: "):
        parse_loss(text)
    assert time.perf_counter() - start < 2.0


def test_never_evaluates_the_text(monkeypatch):
    """eval/exec/sympify(str)/parse_expr are never called; compile only builds ASTs."""

    def forbidden(*args, **kwargs):
        raise AssertionError("forbidden call during parse_loss")

    sympify_module = importlib.import_module("sympy.core.sympify")
    real_sympify = sympify_module.sympify

    def sympify_no_strings(a, *args, **kwargs):
        if isinstance(a, str):
            pytest.fail("sympify called on a string")
        return real_sympify(a, *args, **kwargs)

    real_compile = builtins.compile
    compile_flags = []

    def compile_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        compile_flags.append(flags)
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", compile_ast_only)
    monkeypatch.setattr(sympy, "sympify", sympify_no_strings)
    monkeypatch.setattr(sympify_module, "sympify", sympify_no_strings)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden)

    text = "log(1 + exp(x*y)) + sigmoid(z)^2 / 4 - 0.5*tanh(x) + pi*E + relu(x - 1)"
    _, params, _ = parse_loss(text)
    assert params == (x, y, z)
    assert compile_flags and all(f & ast.PyCF_ONLY_AST for f in compile_flags)


def test_module_does_not_reference_evaluating_functions():
    tree = ast.parse(inspect.getsource(parsing))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not names & {"eval", "exec", "compile", "sympify", "parse_expr", "S", "lambdify"}


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(x*y-1)**2/2", (x * y - 1) ** 2 / 2),
        ("x^2", x**2),
        ("2*x^2 + 1", 2 * x**2 + 1),  # ^ has the precedence of **, not of xor
        ("x^3^2", x**9),  # right-associative
        ("-x^2", -(x**2)),
        ("sigmoid(x)", 1 / (1 + sympy.exp(-x))),
        ("softplus(x)", sympy.log(1 + sympy.exp(x))),
        ("relu(x)", sympy.Max(0, x)),
        ("log(1+exp(x*y))", sympy.log(1 + sympy.exp(x * y))),
        ("1/4*(x**2*y**2-1)**2", sympy.Rational(1, 4) * (x**2 * y**2 - 1) ** 2),
        ("x - y - z", x - y - z),
        ("x / y / z", x / (y * z)),
        ("x**(1/2)", sympy.sqrt(x)),
        ("abs(x) + Abs(y)", sympy.Abs(x) + sympy.Abs(y)),
        ("max(x, y, 1) + min(x, y)", sympy.Max(x, y, 1) + sympy.Min(x, y)),
        ("atan2(y, x)", sympy.atan2(y, x)),
        ("erf(x) + erfc(y) + loggamma(x)", sympy.erf(x) + sympy.erfc(y) + sympy.loggamma(x)),
        ("Heaviside(x) + sign(y)", sympy.Heaviside(x) + sympy.sign(y)),
        ("pi*x + E*y", sympy.pi * x + sympy.E * y),
        ("+x", x),
    ],
)
def test_parses_to_the_directly_built_expression(text, expected):
    expr, _, _ = parse_loss(text)
    assert expr == expected
    assert sympy.expand(expr - expected) == 0


def test_integer_division_is_exact_and_floats_stay_floats():
    expr, _, _ = parse_loss("x/4 + 1/3*y")
    assert expr == sympy.Rational(1, 4) * x + sympy.Rational(1, 3) * y
    assert expr.coeff(x) == sympy.Rational(1, 4)
    fexpr, _, _ = parse_loss("0.25*x")
    assert isinstance(fexpr.coeff(x), sympy.Float) and fexpr.coeff(x) == 0.25


def test_lowercase_e_is_a_symbol_and_uppercase_E_is_euler():
    expr, params, _ = parse_loss("e*x + E")
    e = sympy.Symbol("e", real=True)
    assert params == (e, x)
    assert expr == e * x + sympy.E


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1/0 + x", "division by zero ('1/0')"),
        ("x/(y - y)", "division by zero"),
        ("x * 0**-1", "division by zero"),
        ("log(0) + x", "not finite"),
        ("1e999 * x", "not finite"),
        ("sqrt(-1) * x", "not real"),
        ("asin(2) * x", "not real"),
        ("exp(x, y)", "exp() takes 1 argument, got 2"),
        ("atan2(x)", "atan2() takes 2 arguments, got 1"),
        ("max(x)", "max() takes at least 2 arguments, got 1"),
        ("", "empty"),
        ("3", "no parameters"),
        ("I*x", "'I' is reserved"),
    ],
)
def test_refuses_bad_values(text, fragment):
    with pytest.raises(LossParseError, match=r"^loss: ") as exc_info:
        parse_loss(text)
    assert fragment in str(exc_info.value)


def test_syntax_errors_report_the_column():
    with pytest.raises(LossParseError) as exc_info:
        parse_loss("x + * y")
    assert _one_line_error(exc_info).startswith("loss: syntax error at column 5")
    with pytest.raises(LossParseError, match="column 7"):
        parse_loss("x^2 * * y")  # column counted in the original text, '^' not '**'
    with pytest.raises(LossParseError, match="line 2, column 3"):
        parse_loss("(x\n+ * y)")


def test_rejects_non_string_text():
    with pytest.raises(LossParseError, match=r"^loss: expected a str, got Symbol"):
        parse_loss(x)


# --------------------------------------------------------------------------- params and consts


def test_params_sorted_naturally_and_real():
    expr, params, consts = parse_loss("theta10 + theta2 + theta1*x + y")
    assert [p.name for p in params] == ["theta1", "theta2", "theta10", "x", "y"]
    assert all(p.is_real for p in params)
    assert consts == ()
    assert set(params) == expr.free_symbols


def test_returned_symbols_are_the_objects_in_the_expression():
    expr, params, consts = parse_loss("(w*a - b)^2", consts=["a", "b"])
    assert [p.name for p in params] == ["w"] and [c.name for c in consts] == ["a", "b"]
    by_name = {s.name: s for s in expr.free_symbols}
    for s in params + consts:
        assert by_name[s.name] is s


def test_given_params_keep_their_order_and_objects():
    plain = sympy.Symbol("y")  # no assumptions: used as given
    expr, params, _ = parse_loss("x*y", params=[plain, "x"])
    assert params[0] is plain and params[1] == x
    assert expr.free_symbols == {plain, x}


def test_unused_params_are_allowed():
    _, params, _ = parse_loss("x**2", params=["x", "y"])
    assert params == (x, y)


def test_unknown_symbols_are_listed():
    with pytest.raises(LossParseError) as exc_info:
        parse_loss("x*y + z + a", params=["x", "y"])
    assert str(exc_info.value) == (
        "loss: unknown symbols ['a', 'z']; params are ['x', 'y'], consts are []"
    )


def test_name_in_params_and_consts_names_consts():
    with pytest.raises(LossParseError, match=r"^consts: \['x'\] also appear in params"):
        parse_loss("x*y", params=["x", "y"], consts=["x"])


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"params": ["exp"]}, r"^params: 'exp' is a function name"),
        ({"params": ["x", "x"]}, r"^params: duplicate name 'x'"),
        ({"params": ["x y"]}, r"^params: 'x y' is not a valid symbol name"),
        ({"params": "x"}, r"^params: expected a sequence of names or Symbols, got str"),
        ({"params": []}, r"^params: expected at least one parameter"),
        ({"params": [1]}, r"^params: item 0 must be a name or a Symbol, got int"),
        ({"consts": ["pi"]}, r"^consts: 'pi' is a constant"),
    ],
)
def test_bad_params_and_consts_name_the_argument(kwargs, pattern):
    with pytest.raises(LossParseError, match=pattern):
        parse_loss("x", **kwargs)


# --------------------------------------------------------------------------- errors


def test_exception_hierarchy():
    assert issubclass(LossParseError, DeriveInputError)
    assert issubclass(DeriveInputError, ValueError)
    assert issubclass(NotAGradientField, ValueError)


def test_not_a_gradient_field():
    anti = sympy.Matrix([[0, x], [-x, 0]])
    err = NotAGradientField(2, "d f_1/d y != d f_2/d x", antisymmetric_part=anti)
    assert err.order == 2 and err.detail == "d f_1/d y != d f_2/d x"
    assert err.antisymmetric_part is anti
    assert str(err) == "order 2: the correction is not a gradient field; d f_1/d y != d f_2/d x"
    assert NotAGradientField(3, "two\nlines").antisymmetric_part is None
    assert "\n" not in str(NotAGradientField(3, "two\nlines"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.order, copy.detail, copy.antisymmetric_part) == (2, err.detail, anti)


# --------------------------------------------------------------------------- _validate


def test_as_expr_accepts_scalars():
    assert V.as_expr(x**2) == x**2
    assert V.as_expr(3) == 3 and isinstance(V.as_expr(0.5), sympy.Float)


@pytest.mark.parametrize(
    "obj, pattern",
    [
        ("x**2", r"^loss: expected a scalar SymPy expression, got str .*parse_loss"),
        (
            sympy.Matrix([x, y]),
            r"^loss: expected a scalar SymPy expression, got Matrix of shape \(2, 1\)$",
        ),
        ([x, y], r"^loss: .*got list of length 2"),
        (x < 1, r"^loss: .*relation or boolean"),
        (sympy.true, r"^loss: .*relation or boolean"),
        (True, r"^loss: .*got bool"),
        (None, r"^loss: .*got NoneType"),
        (float("nan"), r"^loss: .*non-finite"),
        (object(), r"^loss: .*got object"),
        (sympy.zoo * x, r"^loss: expected a finite expression"),
    ],
)
def test_as_expr_refuses(obj, pattern):
    with pytest.raises(DeriveInputError, match=pattern):
        V.as_expr(obj)


def test_as_expr_uses_name():
    with pytest.raises(DeriveInputError, match=r"^vector_field: "):
        V.as_expr([x], name="vector_field")


def test_as_params():
    assert V.as_params(x) == (x,)
    assert V.as_params([x, y]) == (x, y)
    assert V.as_params(sympy.Matrix([x, y])) == (x, y)
    for bad, pattern in [
        ([], r"^params: expected at least one"),
        ([x, x], r"^params: duplicate symbol 'x'"),
        ([x, sympy.Symbol("x")], r"^params: two different symbols share the name 'x'"),
        ([x, 1], r"^params: item 1 must be a Symbol"),
        ("x", r"^params: expected a Symbol or a sequence of Symbols, got str"),
        (sympy.Matrix([[x, y], [y, x]]), r"^params: expected a column of Symbols"),
        (3, r"^params: expected a Symbol or a sequence"),
    ]:
        with pytest.raises(DeriveInputError, match=pattern):
            V.as_params(bad)
    with pytest.raises(DeriveInputError, match=r"^theta: "):
        V.as_params([], name="theta")


def test_as_consts():
    assert V.as_consts((), [x]) == ()
    assert V.as_consts(None, [x]) == ()
    assert V.as_consts([y], [x]) == (y,)
    with pytest.raises(DeriveInputError, match=r"^consts: \['x'\] also appear in params"):
        V.as_consts([x, y], [x])
    with pytest.raises(DeriveInputError, match=r"^consts: item 0 must be a Symbol"):
        V.as_consts(["y"], [x])


def test_check_free_symbols():
    eta = sympy.Symbol("eta", positive=True)
    V.check_free_symbols(x * y + eta, [x, y], allowed=[eta])
    V.check_free_symbols([x, sympy.Matrix([y])], [x], consts=[y])
    with pytest.raises(DeriveInputError) as exc_info:
        V.check_free_symbols(x + z + sympy.Symbol("a"), [x, y])
    assert str(exc_info.value) == (
        "loss: unknown symbols ['a', 'z']; params are ['x', 'y'], consts are []"
    )
    with pytest.raises(DeriveInputError, match=r"^loss: unknown symbols \['eta'\]"):
        V.check_free_symbols(x + eta, [x])
    with pytest.raises(DeriveInputError, match=r"assumptions"):
        V.check_free_symbols(sympy.Symbol("x"), [x])  # same name, not real=True
    with pytest.raises(DeriveInputError, match=r"^field: "):
        V.check_free_symbols(z, [x], name="field")


def test_check_smooth():
    c = sympy.Symbol("c", real=True)
    V.check_smooth(sympy.exp(x) + sympy.log(1 + y**2) + sympy.tanh(x) + sympy.erf(y), [x, y])
    V.check_smooth(sympy.Abs(c) * x**2 + sympy.Max(c, 1), [x])  # non-smooth only in consts
    with pytest.raises(DeriveInputError) as exc_info:
        V.check_smooth(x**2 + sympy.Abs(x), [x])
    assert str(exc_info.value) == (
        "loss: Abs(x) is not smooth in the parameters; "
        "this derivation needs derivatives of the loss"
    )
    for bad in [
        sympy.Max(0, x),
        sympy.sign(x),
        sympy.Heaviside(x),
        sympy.floor(x),
        sympy.Piecewise((x, x > 0), (0, True)),
        sympy.Mod(x, 2),
    ]:
        with pytest.raises(DeriveInputError, match="is not smooth"):
            V.check_smooth(bad + y, [x, y], what="the central flow")
    with pytest.raises(DeriveInputError, match="; the central flow needs derivatives"):
        V.check_smooth(sympy.Min(x, y), [x, y], what="the central flow")


def test_check_order():
    assert V.check_order(3) == 3
    assert V.check_order(0, minimum=0) == 0
    for bad, message in [
        (0, "order: expected an integer >= 1, got 0"),
        (True, "order: expected an integer >= 1, got bool True"),
        (1.5, "order: expected an integer >= 1, got float 1.5"),
        ("2", "order: expected an integer >= 1, got str '2'"),
    ]:
        with pytest.raises(DeriveInputError) as exc_info:
            V.check_order(bad)
        assert str(exc_info.value) == message
    with pytest.raises(
        DeriveInputError, match=r"^n_steps: expected an integer in \[1, 4\], got 5$"
    ):
        V.check_order(5, name="n_steps", maximum=4)


def test_check_choice():
    assert V.check_choice("heun", ["euler", "midpoint", "heun"], "method") == "heun"
    with pytest.raises(DeriveInputError) as exc_info:
        V.check_choice("rk5", ["midpoint", "euler", "heun"], "method", "a ButcherTableau")
    assert str(exc_info.value) == (
        "method: unknown value 'rk5'; expected one of ['euler', 'heun', 'midpoint'] "
        "or a ButcherTableau"
    )
    with pytest.raises(DeriveInputError, match=r"^method: unknown value \[1\]"):
        V.check_choice([1], ["euler"], "method")


def test_symbol_sort_key():
    names = ["theta10", "x", "theta2", "theta1", "b12a", "b2a"]
    assert sorted(names, key=V.symbol_sort_key) == [
        "b2a",
        "b12a",
        "theta1",
        "theta2",
        "theta10",
        "x",
    ]
