"""Exceptions raised by the symbolic layer.

Every message is a single line that starts with the name of the offending
argument (``"loss: ..."``, ``"params: ..."``), so that the CLI can print it as
is and exit with status 2.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DeriveInputError", "LossParseError", "NotAGradientField"]


class DeriveInputError(ValueError):
    """Bad user input to a ``derive`` API.

    The message is one line naming the offending argument first, e.g.
    ``"loss: expected a scalar SymPy expression, got Matrix of shape (2, 1)"``.
    """


class LossParseError(DeriveInputError):
    """A loss string was refused by :func:`derive.parsing.parse_loss`.

    Raised for syntax errors, for any construct outside the whitelisted
    arithmetic grammar, for unknown symbols and for non-finite results.
    """


class NotAGradientField(ValueError):
    """A modified-vector-field correction is not the gradient of any loss.

    A vector field ``f`` on parameter space is a gradient field iff its
    Jacobian is symmetric; the antisymmetric part ``(J - J^T) / 2`` is the
    obstruction.

    Args:
        order: Order (power of the learning rate ``eta``) of the correction.
        detail: One-line explanation, e.g. which Jacobian entries disagree.
        antisymmetric_part: Optional witness of the obstruction, e.g. a SymPy
            Matrix or a formula string; kept as given.

    Attributes:
        order: As given.
        detail: As given.
        antisymmetric_part: As given (``None`` when not supplied).
    """

    def __init__(self, order: int, detail: str, antisymmetric_part: Any = None) -> None:
        self.order = order
        self.detail = detail
        self.antisymmetric_part = antisymmetric_part
        one_line = " ".join(str(detail).split())
        super().__init__(f"order {order}: the correction is not a gradient field; {one_line}")

    def __reduce__(self):
        # Keep the three constructor arguments through pickling (multiprocessing).
        return (type(self), (self.order, self.detail, self.antisymmetric_part))
