"""Machine-learning pieces shared by every engine: one logistic-regression objective.

The problem is convex, so every engine must land on the same coefficients. To make
that true, all of them minimise exactly

    f(W) = (1/n) * sum_i -log softmax(b + x_i*W_x + y_i*W_y)[category_i]  +  (lambda/2) * ||W_x, W_y||^2

(multinomial over A, B, C, D; intercepts unpenalised). Engines without a suitable
library compute `partial_loss_grad` on each partition, sum the parts on the driver
and let SciPy's L-BFGS drive (`fit_distributed`); pandas uses scikit-learn and Spark
uses MLlib with the equivalent settings (`sklearn_C`, MLlib regParam = lambda).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from scalebench.datasets.schemas import CATEGORIES, TRUE_COEFFICIENTS

FEATURES = ("x", "y")
L2 = 1e-4
"""lambda: per-row L2 strength; small, so large samples approach the generator's truth."""
TOL = 1e-10
MAX_ITER = 500
COEF_ROWS = ("intercept", *FEATURES)


@dataclass(frozen=True)
class Partial:
    """Sums over one partition: loss, gradient (3 x 4) and rows, plus correct predictions."""

    loss: float
    grad: np.ndarray
    rows: int
    correct: int = 0

    def __add__(self, other: Partial) -> Partial:
        return Partial(self.loss + other.loss, self.grad + other.grad, self.rows + other.rows,
                       self.correct + other.correct)


def category_codes(categories: Iterable[str] | np.ndarray) -> np.ndarray:
    """A-D -> 0-3; anything else is bad input and says so."""
    import pandas as pd

    codes = pd.Categorical(np.asarray(categories, dtype=object), categories=list(CATEGORIES)).codes.astype(np.int64)
    if (codes < 0).any():
        raise ValueError(f"column 'category': values outside {', '.join(CATEGORIES)}")
    return codes


def partial_loss_grad(x: np.ndarray, y: np.ndarray, codes: np.ndarray, w: np.ndarray) -> Partial:
    """Unregularised sums for one block; `w` is (3, 4): rows intercept, x, y; columns A-D."""
    design = np.column_stack([np.ones_like(x), x, y])
    logits = design @ w
    logits -= logits.max(axis=1, keepdims=True)
    expl = np.exp(logits)
    norm = expl.sum(axis=1, keepdims=True)
    prob = expl / norm
    n = len(codes)
    loss = float(-(logits[np.arange(n), codes] - np.log(norm[:, 0])).sum())
    prob[np.arange(n), codes] -= 1.0
    return Partial(loss, design.T @ prob, n, int((logits.argmax(axis=1) == codes).sum()))


def partial_for_frame(df, w: np.ndarray) -> Partial:
    """partial_loss_grad of a pandas frame with columns x, y, category."""
    return partial_loss_grad(df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64),
                             category_codes(df["category"]), w)


@dataclass(frozen=True)
class Fit:
    coef: np.ndarray
    """(3, 4): rows intercept, x, y; columns A, B, C, D."""
    iterations: int
    loss: float
    accuracy: float
    rows: int

    def relative_to_a(self) -> np.ndarray:
        """Coefficients minus class A's: the identifiable part, comparable with TRUE_COEFFICIENTS."""
        return self.coef - self.coef[:, :1]

    def info(self) -> dict[str, object]:
        rel = self.relative_to_a()
        return {
            "logreg_iterations": self.iterations, "logreg_objective": self.loss, "logreg_accuracy": self.accuracy,
            "logreg_rows": self.rows,
            "logreg_coef_vs_A": {c: [round(float(v), 6) for v in rel[:, i]] for i, c in enumerate(CATEGORIES)},
            "logreg_max_error_vs_truth": float(np.abs(rel - truth_relative_to_a()).max()),
        }


def truth_relative_to_a() -> np.ndarray:
    return np.array([TRUE_COEFFICIENTS[c] for c in CATEGORIES]).T


def objective(total: Partial, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss plus the L2 term, and its gradient, from summed partials."""
    penal = w.copy()
    penal[0] = 0.0
    loss = total.loss / total.rows + 0.5 * L2 * float((penal**2).sum())
    return loss, total.grad / total.rows + L2 * penal


def fit_distributed(partials: Callable[[np.ndarray], Partial]) -> Fit:
    """L-BFGS on the driver; each evaluation is one distributed pass: `partials(w)` sums every partition."""
    from scipy.optimize import minimize

    shape = (len(COEF_ROWS), len(CATEGORIES))
    calls = {"n": 0, "last": None}

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(shape)
        total = partials(w)
        calls["n"] += 1
        calls["last"] = total
        loss, grad = objective(total, w)
        return loss, grad.ravel()

    res = minimize(fun, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B",
                   options={"maxiter": MAX_ITER, "ftol": TOL, "gtol": 1e-8})
    w = res.x.reshape(shape)
    total = partials(w)
    return Fit(w, int(res.nit), objective(total, w)[0], total.correct / total.rows, total.rows)


def fit_from_sklearn(model, rows: int, accuracy: float) -> Fit:
    classes = list(model.classes_)
    order = [classes.index(c) for c in CATEGORIES]
    coef = np.vstack([model.intercept_[order], model.coef_[order].T])
    return Fit(coef, int(np.max(model.n_iter_)), float("nan"), accuracy, rows)


def sklearn_C(rows: int) -> float:
    """scikit-learn minimises C*sum(loss) + ||W||^2/2: the same optimum as ours when C = 1/(lambda*n)."""
    return 1.0 / (L2 * rows)
