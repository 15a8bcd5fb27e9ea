"""Weighted k-means (Lloyd's algorithm) run to convergence, accelerated but exact.

Each iteration assigns every point to its nearest center and moves each center to the weighted
mean of its points. Bounds in the manner of Hamerly's skip the points that provably keep their
center (one on the distance to its own center, one to its runner-up, one to all the others), and
a point that must be checked scans only the centers near its own (triangle inequality); the
result is the one plain Lloyd gives. It stops when the objective (weighted sum of squared
distances) drops by less than ``tol`` relative to the previous iteration, when no label changes,
or at ``max_iter``.
An empty cluster is re-seeded at the point that contributes most to the objective.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kmq._config import start_numba
from kmq._kernels import kmeans as _k
from kmq.errors import CancelledError

numba = start_numba()

Progress = Callable[[str, float], bool | None]

#: Point sets at least this large are assigned by several threads; smaller ones are not worth a
#: parallel region per iteration (its start-up dominates, and on a loaded machine it stalls).
PARALLEL_MIN_POINTS = 100_000
#: A swap trial's Lloyd run stops at this many times the tolerance: a trial only has to show
#: whether the swap pays, and the runs that follow (Hartigan's moves, the finer levels) converge
#: at the tolerance itself.
TRIAL_TOL_FACTOR = 3.0
#: A run given a mark (``give_up_above``) stops once its objective minus this many times its
#: last drop is still above the mark: Lloyd's drops shrink, so it would not get below it.
GIVE_UP_FACTOR = 20.0
#: With a progress callback, Lloyd reports (and may be cancelled) after this many iterations.
PROGRESS_EVERY = 4


def assign(points, centers, cc2, order, half_min, labels, upper, lower, drift, max_drift,
           second_drift, argmax_drift, *, parallel: bool = True) -> int:
    """Run the assignment kernel, on one thread for small point sets or when ``parallel`` is
    False (see ``_k.assign``)."""
    threads = numba.get_num_threads()
    if (not parallel or len(points) < PARALLEL_MIN_POINTS) and threads > 1:
        numba.set_num_threads(1)
    try:
        return _k.assign(points, centers, cc2, order, half_min, labels, upper, lower, drift,
                         max_drift, second_drift, argmax_drift)
    finally:
        numba.set_num_threads(threads)


@dataclass(frozen=True)
class KMeansResult:
    """Converged centers, the label of every point, the objective and how it ended.

    ``bounds``, when known, are each point's distance bounds for ``centers`` (upper bound to its
    own, runner-up index, lower bound to the runner-up, lower bound to the rest; see
    ``_k.assign_tracked``): :func:`refine_by_swaps` starts its trials from them. ``order``,
    when known, is each center's neighbours by increasing distance as the last iteration saw
    them (see ``_k.center_geometry``): nearly sorted for ``centers``, a cheap start for the
    next run's.
    """

    centers: np.ndarray
    labels: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    bounds: tuple | None = field(default=None, repr=False, compare=False)
    order: np.ndarray | None = field(default=None, repr=False, compare=False)


def grid_guess(points: np.ndarray, centers: np.ndarray, cells: int = 8) -> np.ndarray:
    """A cheap first guess of each point's nearest center: the center nearest to the middle of
    its cell in a ``cells``-cubed grid over the points' bounding box (any guess is correct for
    :func:`assign`; a close one makes its first pass fast)."""
    low = points.min(axis=0)
    step = np.maximum(points.max(axis=0) - low, 1e-12) / cells
    axis = (np.arange(cells) + 0.5)
    mids = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    mids = low + mids * step
    d2 = ((mids[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    best = np.argmin(d2, axis=1).astype(np.int32)
    return _k.grid_labels(points, low, step, cells, best)


def _drift_stats(drift: np.ndarray) -> tuple[float, float, int]:
    if len(drift) == 1:
        return float(drift[0]), 0.0, 0
    top = int(np.argmax(drift))
    second = float(np.max(np.delete(drift, top)))
    return float(drift[top]), second, top


def _reseed_empty(points, weights, labels, upper, lower_second, lower_rest, sums, totals,
                  empty) -> None:
    """Move each empty cluster onto the point with the largest weighted distance bound."""
    for j in empty:
        score = weights * upper * upper
        score[totals[labels] <= weights] = -1.0  # never empty another cluster
        i = int(np.argmax(score))
        if score[i] <= 0:
            return
        old = labels[i]
        sums[old] -= weights[i] * points[i]
        totals[old] -= weights[i]
        sums[j] = weights[i] * points[i]
        totals[j] = weights[i]
        labels[i] = j
        upper[i] = 0.0
        lower_second[i] = 0.0
        lower_rest[i] = 0.0


def kmeans(points: np.ndarray, weights: np.ndarray, centers: np.ndarray, *,
           labels: np.ndarray | None = None, tol: float = 1e-4, max_iter: int = 300,
           progress: Progress | None = None, stage: str = "kmeans",
           parallel: bool = True, give_up_above: float = np.inf,
           order: np.ndarray | None = None) -> KMeansResult:
    """Weighted Lloyd iterations from ``centers`` until convergence.

    Parameters
    ----------
    points : (N, 3) float array
    weights : (N,) positive float array
    centers : (K, 3) float array, the initial centers (K <= N)
    labels : (N,) int array, optional
        A guess of each point's center (speeds up the first iteration; any guess is correct).
    tol : float
        Stop when ``(J_prev - J) <= tol * J_prev`` for the objective ``J``.
    max_iter : int
    progress : callable(stage, fraction) -> bool, optional
        Called every ``PROGRESS_EVERY`` iterations; returning True cancels
        (:class:`CancelledError`).
    parallel : bool
        Let a large assignment use several threads. Pass False when the caller already runs
        several k-means at once in threads (numba's thread pool is not re-entrant).
    give_up_above : float
        Stop early (not converged) once the objective cannot plausibly end below this mark (see
        ``GIVE_UP_FACTOR``); :func:`refine_by_swaps` uses it to drop hopeless trials.
    order : (K, K) int array, optional
        Each center's neighbours in an order near their order by distance (as
        :attr:`KMeansResult.order`), which the first iteration then only repairs; without, it
        is sorted afresh. The run is the same either way.

    The iterations run inside one compiled call (``_k.lloyd_steps``), so their cost is the
    kernels' alone.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.kmeans import kmeans
    >>> pts = np.array([[0, 0, 0], [2, 0, 0], [10, 0, 0], [12, 0, 0]], float)
    >>> r = kmeans(pts, np.ones(4), pts[[0, 1]].copy())
    >>> r.centers[:, 0].tolist(), r.objective, r.converged
    ([1.0, 11.0], 4.0, True)
    """
    points = np.ascontiguousarray(points, np.float64)
    weights = np.ascontiguousarray(weights, np.float64)
    centers = np.array(centers, np.float64, order="C")
    n, k = len(points), len(centers)
    if not 1 <= k <= n:
        raise ValueError(f"expected 1 <= number of centers <= number of points ({n}); got {k}")
    if tol < 0 or max_iter < 1:
        raise ValueError(f"expected tol >= 0 and max_iter >= 1; got tol={tol}, max_iter={max_iter}")
    labels = (grid_guess(points, centers) if labels is None
              else np.array(labels, np.int32, order="C"))
    bounds = (np.full(n, np.inf), labels.copy(), np.zeros(n), np.zeros(n))
    return _lloyd(points, weights, centers, labels, bounds, np.zeros(k), np.full(k, np.inf),
                  np.array([0.0, np.inf, 0.0, 0.0, 0.0]), tol=tol, max_iter=max_iter,
                  progress=progress, stage=stage, parallel=parallel,
                  give_up_above=give_up_above,
                  order=None if order is None else np.array(order, np.int32, order="C"))


def _lloyd(points, weights, centers, labels, bounds, drift, far, state, *, tol, max_iter,
           progress, stage, parallel, give_up_above, jumps=None, order=None,
           every=PROGRESS_EVERY) -> KMeansResult:
    """:func:`kmeans` from a given state: ``bounds`` (see :class:`KMeansResult`) hold for
    centers that have since moved by ``drift``; ``far``, ``state``, ``jumps`` (the jump lists,
    or None) and ``order`` (or None: sorted afresh) as ``_k.lloyd_steps`` takes them;
    ``progress``, if any, is called every ``every`` iterations. Every array is updated in
    place."""
    n, k = len(points), len(centers)
    upper, second, lower_second, lower_rest = bounds
    sums, totals = np.empty((k, 3)), np.empty(k)
    # einsum, not np.dot: OpenBLAS would split the sum over threads that then spin for a while,
    # stealing a core from numba (and from a second worker process), and its rounding would
    # depend on the thread count
    total_sq = float(np.einsum("i,ij,ij->", weights, points, points))
    converged = False
    if order is None:
        order = _k.new_order(centers)
    steps = max_iter if progress is None else every
    threads = numba.get_num_threads()
    serial = (not parallel or n < PARALLEL_MIN_POINTS) and threads > 1
    jump_order, jump_d2 = ((np.empty((k, 0), np.int32), np.empty((k, 0)))
                           if jumps is None else jumps)
    # on large integer point sets (the exact sRGB histogram) the sums follow the moved points
    # alone, exactly: a pass over the labels instead of the points (smaller ones are in cache)
    incremental = n >= PARALLEL_MIN_POINTS and bool(_k.all_integral(points, weights))
    while True:
        if serial:
            numba.set_num_threads(1)
        try:
            status, _changed = _k.lloyd_steps(points, weights, centers, labels, upper, second,
                                              lower_second, lower_rest, drift, far, jump_order,
                                              jump_d2, order, state, sums, totals, steps,
                                              max_iter, tol, total_sq, give_up_above,
                                              GIVE_UP_FACTOR, incremental)
            if jump_order.shape[1]:  # the jumps concern the first iteration only
                jump_order, jump_d2 = jump_order[:, :0].copy(), jump_d2[:, :0].copy()
        finally:
            if serial:
                numba.set_num_threads(threads)
        if status == _k.EMPTY:  # finish this iteration here (rare)
            empty = np.flatnonzero(totals == 0)
            _reseed_empty(points, weights, labels, upper, lower_second, lower_rest, sums,
                          totals, empty)
            new = sums / totals[:, None]
            objective = max(total_sq - float(np.einsum("i,ij,ij->", totals, new, new)),
                            0.0)
            drift[:] = np.sqrt(((new - centers) ** 2).sum(axis=1))
            state[2:5] = _drift_stats(drift)
            centers[:] = new
            state[0] += 1
            previous = state[1]
            if np.isfinite(previous) and previous - objective <= tol * previous:
                status = _k.CONVERGED
            elif objective - GIVE_UP_FACTOR * (previous - objective) > give_up_above:
                status = _k.GAVE_UP
            else:
                state[1] = objective
                status = _k.MAX_ITER if state[0] >= max_iter else _k.PAUSED
        it = int(state[0])
        if progress is not None and progress(stage, it / max_iter):
            raise CancelledError(f"cancelled during {stage} at iteration {it}")
        if status != _k.PAUSED:
            converged = status == _k.CONVERGED
            break
    objective = _k.weighted_sse(points, weights, centers, labels)
    if status == _k.GAVE_UP:
        return KMeansResult(centers, labels, float(objective), it, converged)
    _k.settle_bounds(labels, upper, second, lower_second, lower_rest, drift, state[2], state[3],
                     np.int64(state[4]))
    return KMeansResult(centers, labels, float(objective), it, converged, bounds, order)


def refine_by_swaps(points: np.ndarray, weights: np.ndarray, result: KMeansResult, *,
                    tol: float = 1e-4, max_iter: int = 300, max_rounds: int = 8,
                    progress: Progress | None = None) -> KMeansResult:
    """Escape Lloyd's local minimum by moving useless centers into crowded clusters.

    Lloyd stops at a fixed point where some centers do little (deleting one would barely raise
    the objective: low *utility*) while some clusters carry much error. Each round moves the
    ``m`` least useful centers (first :func:`first_swaps`) into the ``m`` clusters of largest
    error (splitting each along its axis of largest spread), runs Lloyd to convergence again
    (at ``TRIAL_TOL_FACTOR`` times ``tol``), and keeps the result only if the objective went
    down; ``m`` halves after a failed round (as in ELBG, Patane and Russo 2001).
    A trial whose Lloyd run clearly cannot end below the current objective is abandoned early.
    The result never has a higher objective than ``result``.

    With more than one numba thread, the round that would follow a failure (``m / 2`` from the
    same centers) runs beside each round on a second thread and is used if the round fails, or
    stopped if it succeeds: the result is the one the rounds give one after the other.
    """
    points = np.ascontiguousarray(points, np.float64)
    weights = np.ascontiguousarray(weights, np.float64)
    best = result
    k = len(best.centers)
    m = first_swaps(k)
    rounds = 0
    pool = ThreadPoolExecutor(max_workers=1) if numba.get_num_threads() > 1 else None
    split = None  # the costs of ``best``'s clusters: the same after a failed round
    try:
        while rounds < max_rounds and k >= 3 and m >= 1:
            if split is None or split[0] is not best:
                centers = best.centers
                order = _k.new_order(centers) if best.order is None else best.order.copy()
                cc2, _half = _k.center_geometry(centers, order)
                axis_sse, utility = _k.cluster_costs(points, weights, centers, best.labels,
                                                     cc2, order, *_runner_hints(best))
                totals = np.bincount(best.labels, weights=weights, minlength=k)
                split = (best, order, axis_sse, utility, totals)
            order = split[1]
            trial = _split_trial(*split, m)
            if trial is None:
                break
            spare = stop = None
            if pool is not None and rounds + 1 < max_rounds and m // 2 >= 1:
                spare_trial = _split_trial(*split, m // 2)
                if spare_trial is not None:
                    stop = threading.Event()

                    def stopped(stage: str, fraction: float, stop=stop) -> bool:
                        return stop.is_set() or bool(progress is not None
                                                     and progress(stage, fraction))

                    spare = pool.submit(_trial, points, weights, best, spare_trial,
                                        tol=tol * TRIAL_TOL_FACTOR, max_iter=max_iter,
                                        give_up_above=best.objective, progress=stopped,
                                        parallel=False, order=order,
                                        every=1)  # stops soon when not needed
            try:
                run = _trial(points, weights, best, trial, tol=tol * TRIAL_TOL_FACTOR,
                             max_iter=max_iter, give_up_above=best.objective, progress=progress,
                             parallel=spare is None, order=order)
            except BaseException:
                if stop is not None:
                    stop.set()
                raise
            rounds += 1
            if run.objective < best.objective * (1.0 - 1e-7):
                if spare is not None and stop is not None:
                    stop.set()  # not needed after all
                    try:
                        spare.result()
                    except CancelledError:
                        pass
                best = _accepted(best, run)
                continue
            m //= 2
            if spare is None:
                continue
            run = spare.result()  # the next round, run already
            rounds += 1
            if run.objective < best.objective * (1.0 - 1e-7):
                best = _accepted(best, run)
            else:
                m //= 2
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return best


def _runner_hints(result: KMeansResult) -> tuple[np.ndarray, np.ndarray]:
    """Each point's runner-up and its bound on every other center, from ``result``'s bounds
    (empty without): spare :func:`_k.own_and_second` most of its searches."""
    if result.bounds is None:
        return np.empty(0, np.int32), np.empty(0)
    return result.bounds[1], result.bounds[3]


def first_swaps(k: int) -> int:
    """How many centers the first swap round moves: half the square root of ``k``, at least 2
    (``k // 8`` below K = 16, at least 1): 2 at K = 16, 4 at K = 64, 8 at K = 256.

    Fewer moves than ``k // 8`` at K = 64 and 256: a first round moving that many centers
    tends to fail after the longest Lloyd run of all (benchmarks/README.md, "Settings chosen
    by measurement").
    """
    return max(1, min(k // 8, max(2, math.isqrt(k) // 2)))


def _accepted(best: KMeansResult, run: KMeansResult) -> KMeansResult:
    return KMeansResult(run.centers, run.labels, run.objective, best.n_iter + run.n_iter,
                        run.converged, run.bounds, run.order)


def _split_trial(best: KMeansResult, order, axis_sse, utility, totals,
                 m: int) -> np.ndarray | None:
    """The centers of a swap round with ``m`` moves (see :func:`refine_by_swaps`), or None
    when no center can move. ``axis_sse`` (K, 3) is each cluster's error along each axis."""
    centers = best.centers
    sse = axis_sse.sum(axis=1)
    receivers = [int(h) for h in np.argsort(-sse, kind="stable")[:m] if sse[h] > 0]
    taken = set(receivers)
    donors: list[int] = []
    for j in np.argsort(utility, kind="stable"):
        if len(donors) == len(receivers):
            break
        j = int(j)
        if j in taken:
            continue
        donors.append(j)
        taken.add(j)
        taken.add(int(order[j, 1]))  # its points' new home must stay
    if not donors:
        return None
    trial = centers.copy()
    for j, h in zip(donors, receivers[: len(donors)], strict=True):
        spread = axis_sse[h] / totals[h]  # a receiver has error, so it has points
        axis = int(np.argmax(spread))
        step = np.zeros(3)
        step[axis] = 0.5 * np.sqrt(spread[axis])
        trial[j] = centers[h] + step
        trial[h] = centers[h] - step
    return trial


def _trial(points, weights, best: KMeansResult, trial: np.ndarray, *, tol, max_iter,
           give_up_above, progress, parallel: bool = True,
           order: np.ndarray | None = None, every: int = PROGRESS_EVERY) -> KMeansResult:
    """Lloyd from ``trial`` (``best.centers`` with some centers moved) and ``best.labels``.

    With ``best.bounds`` the first assignment re-checks only the points that the moved centers
    can have taken or lost: the others' bounds still hold (``far`` covers the jumps); without,
    it searches every point. ``order``, each center's neighbours sorted by distance for
    ``best.centers`` (not changed), is merged with the moved ones into the order for ``trial``
    rather than sorted afresh. ``progress`` is called every ``every`` iterations. Either way
    the run is the one :func:`kmeans` makes.
    """
    if best.bounds is None:
        return kmeans(points, weights, trial, labels=best.labels, tol=tol, max_iter=max_iter,
                      give_up_above=give_up_above, progress=progress, stage="kmeans (refine)",
                      parallel=parallel)
    trial = np.array(trial, np.float64, order="C")
    moved = np.flatnonzero(np.any(trial != best.centers, axis=1))
    drift = np.sqrt(((trial - best.centers) ** 2).sum(axis=1))
    far = _k.jump_distances(trial, moved)
    # the others did not move: the rest bounds lose nothing but what ``far`` says, and a point
    # whose bounds fail need only be compared with the jumped centers near it
    state = np.array([0.0, np.inf, 0.0, 0.0, 0.0])
    bounds = tuple(b.copy() for b in best.bounds)
    jumps = _k.jump_lists(trial, moved)
    if order is not None:
        order = _k.merge_jumps(trial, order.copy(), *jumps)
    return _lloyd(points, weights, trial, best.labels.copy(), bounds, drift, far, state,
                  tol=tol, max_iter=max_iter, progress=progress, stage="kmeans (refine)",
                  parallel=parallel, give_up_above=give_up_above, jumps=jumps, order=order,
                  every=every)


def refine_by_moves(points: np.ndarray, weights: np.ndarray, result: KMeansResult, *,
                    tol: float = 1e-4, max_iter: int = 300, max_passes: int = 30) -> KMeansResult:
    """Hartigan's single-point moves from a Lloyd fixed point, then Lloyd again.

    Passes of moves run until one gains less than ``tol`` of the objective; Lloyd then settles
    every point at its nearest center. Every step lowers the objective, so the result is never
    worse than ``result``. The final Lloyd run starts from ``result``'s bounds and neighbour
    order when it has them (worn down by how far the centers moved; the colors that moved are
    searched afresh), which saves work but not a single label.
    """
    points = np.ascontiguousarray(points, np.float64)
    weights = np.ascontiguousarray(weights, np.float64)
    k = len(result.centers)
    labels = result.labels.copy()
    sums, totals = _k.accumulate(points, weights, labels, k)
    if np.any(totals == 0):
        return result
    centers = sums / totals[:, None]
    order = _k.new_order(centers) if result.order is None else result.order.copy()
    # each color's distance to the nearest other center: the passes skip the colors it puts
    # out of reach (worn down by how far the centers move; a searched color gets a fresh one)
    cc2, _half = _k.center_geometry(centers, order)
    own, lower = np.empty(len(points)), np.empty(len(points))
    _k.own_and_second(points, centers, labels, cc2, order, own, lower, *_runner_hints(result))
    np.sqrt(lower, out=lower)
    wear = 0.0
    for npass in range(max_passes):
        if npass:
            cc2, _half = _k.center_geometry(sums / totals[:, None], order)
        moved, gain, shifted = _k.hartigan_pass(points, weights, sums, totals, labels, cc2,
                                                order, lower, wear)
        wear += shifted
        sums, totals = _k.accumulate(points, weights, labels, k)  # no drift from updates
        if moved == 0 or gain <= tol * result.objective:
            break
    centers = sums / totals[:, None]
    if result.bounds is None:
        run = kmeans(points, weights, centers, labels=labels, tol=tol, max_iter=max_iter,
                     stage="kmeans (refine)", order=order)
    else:
        # ``result``'s bounds still hold for the colors that kept their cluster, once worn
        # down by how far the centers moved; the moved colors are searched afresh
        upper, second, lower_second, lower_rest = (b.copy() for b in result.bounds)
        moved = labels != result.labels
        upper[moved] = np.inf
        second[moved] = labels[moved]
        lower_second[moved] = 0.0
        lower_rest[moved] = 0.0
        drift = np.sqrt(((centers - result.centers) ** 2).sum(axis=1))
        state = np.array([0.0, np.inf, *_drift_stats(drift)])
        run = _lloyd(points, weights, centers, labels, (upper, second, lower_second, lower_rest),
                     drift, np.full(k, np.inf), state, tol=tol, max_iter=max_iter,
                     progress=None, stage="kmeans (refine)", parallel=True,
                     give_up_above=np.inf, order=order)
    if run.objective >= result.objective:
        return result
    return KMeansResult(run.centers, run.labels, run.objective, result.n_iter + run.n_iter,
                        run.converged, run.bounds, run.order)
