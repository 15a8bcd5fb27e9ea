"""The k-means kernels and stages against the plain NumPy definitions in tests/naive.py."""

import numpy as np
import pytest

from kmq import seeding
from kmq._kernels import kmeans as _k
from kmq.color_histogram import histogram
from kmq.kmeans import kmeans, refine_by_moves, refine_by_swaps
from kmq.seeding import kmeans_plus_plus
from naive import (
    cell_means,
    cluster_costs,
    grid_labels,
    jump_distances,
    jump_lists,
    kmeanspp,
    lloyd,
    near_drift,
    nearest,
    neighbour_order,
    objective,
    sq_distances,
    weighted_means,
)
from naive import (
    hartigan_pass as naive_hartigan_pass,
)


@pytest.fixture(scope="module")
def photo_points(small_photo):
    h = histogram(small_photo)
    return h.colors.astype(np.float64), h.counts.astype(np.float64), h.colors


def test_center_geometry_sorts_rows_by_distance():
    rng = np.random.default_rng(3)
    centers = rng.random((37, 3)) * 255
    order = _k.new_order(centers[::-1].copy())  # sorted for other centers: must be repaired
    cc2, half = _k.center_geometry(centers, order)
    expected = ((centers[:, None] - centers[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(cc2, expected, rtol=1e-12)
    for a in range(len(centers)):
        assert np.all(np.diff(expected[a, order[a]]) >= 0)
        assert sorted(order[a].tolist()) == list(range(len(centers)))
    np.testing.assert_allclose(half, 0.5 * np.sqrt(np.where(np.eye(37, dtype=bool), np.inf,
                                                             expected).min(axis=1)))


@pytest.mark.parametrize("k", [2, 16, 255])
def test_lloyd_matches_the_plain_algorithm(photo_points, k):
    points, weights, _ = photo_points
    rng = np.random.default_rng(k)
    init = points[rng.choice(len(points), k, replace=False)] + rng.random((k, 3)) * 0.01
    ref_centers, ref_labels, ref_obj, ref_iter = lloyd(points, weights, init)
    r = kmeans(points, weights, init)
    assert r.n_iter == ref_iter and r.converged
    np.testing.assert_array_equal(r.labels, ref_labels)
    np.testing.assert_allclose(r.centers, ref_centers, rtol=1e-12, atol=1e-9)
    assert r.objective == pytest.approx(ref_obj, rel=1e-12)


def test_kmeans_reseeds_empty_clusters_without_nan(photo_points):
    points, weights, _ = photo_points
    init = np.vstack([points[:6], np.full((4, 3), 1e4)])  # four centers far from every color
    r = kmeans(points, weights, init)
    assert np.isfinite(r.centers).all()
    assert len(np.unique(r.labels)) == 10
    assert r.objective == pytest.approx(objective(points, weights, r.centers, r.labels))


def test_kmeans_stops_at_max_iter(photo_points):
    points, weights, _ = photo_points
    r = kmeans(points, weights, points[:64].copy(), max_iter=2, tol=0.0)
    assert r.n_iter == 2 and not r.converged


@pytest.mark.parametrize("k", [24, 70])  # the textbook loop, and the lists (above 32)
def test_kmeanspp_matches_reference_draw_for_draw(photo_points, k):
    points, weights, _ = photo_points
    uniforms = np.random.default_rng(7).random((k, 5))
    chosen = _k.kmeanspp(points, weights, k, uniforms)
    np.testing.assert_array_equal(chosen, kmeanspp(points, weights, k, uniforms))
    assert len(set(chosen.tolist())) == k


def test_seeding_is_reproducible_and_seed_dependent(photo_points):
    points, weights, _ = photo_points
    a = kmeans_plus_plus(points, weights, 16, np.random.default_rng(1))
    b = kmeans_plus_plus(points, weights, 16, np.random.default_rng(1))
    c = kmeans_plus_plus(points, weights, 16, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("shift", [2, 3, 5])
def test_coarse_bins_are_weighted_cell_means(photo_points, shift):
    points, weights, colors = photo_points
    means, totals, member = _k.coarse_bins(colors, points, weights, shift)
    ref_means, ref_totals, ref_member = cell_means(colors, points, weights, shift)
    np.testing.assert_allclose(means, ref_means, rtol=1e-12)
    np.testing.assert_array_equal(totals, ref_totals)
    np.testing.assert_array_equal(member, ref_member)


@pytest.mark.parametrize("k", [20, 150])
def test_cluster_costs_match_reference(photo_points, k):
    """With and without the runner-up hints of a Lloyd run's bounds: the same costs."""
    points, weights, _ = photo_points
    r = kmeans(points, weights, points[:: len(points) // k][:k].copy())
    centers, labels = r.centers, r.labels  # the labels of the run's last assignment
    order = _k.new_order(centers)
    cc2, _ = _k.center_geometry(centers, order)
    none = (np.empty(0, np.int32), np.empty(0))
    axis_sse, utility = _k.cluster_costs(points, weights, centers, labels, cc2, order, *none)
    ref_sse, ref_utility = cluster_costs(points, weights, centers, labels)
    assert axis_sse.shape == (k, 3)
    np.testing.assert_allclose(axis_sse, ref_sse, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(utility, ref_utility, rtol=1e-9, atol=1e-9)
    # the run's bounds hold for its centers and labels
    _, second, _, rest = r.bounds
    hinted = _k.cluster_costs(points, weights, centers, labels, cc2, order, second, rest)
    np.testing.assert_array_equal(hinted[0], axis_sse)
    np.testing.assert_array_equal(hinted[1], utility)


def _hartigan_case(seed):
    rng = np.random.default_rng(seed)
    points = np.vstack([rng.normal(c, 6.0, (400, 3)) for c in rng.uniform(0, 255, (12, 3))])
    weights = rng.integers(1, 30, len(points)).astype(np.float64)
    weights[rng.choice(len(points), 5, replace=False)] = 2000.0  # a few heavy colors
    start = kmeans(points, weights, points[rng.choice(len(points), 24, replace=False)].copy())
    sums, totals = _k.accumulate(points, weights, start.labels, 24)
    return points, weights, start, sums, totals


def _kernel_passes(points, weights, start, sums, totals, lower, passes=3):
    """Kernel passes from ``start`` (each from the centers the one before left, with its bounds
    carried over), beside the naive passes from the same state."""
    labels, sums, totals, lower = start.labels.copy(), sums.copy(), totals.copy(), lower.copy()
    ref_labels, ref_sums, ref_totals = labels.copy(), sums.copy(), totals.copy()
    order = _k.new_order(sums / totals[:, None])
    out = []
    wear = 0.0
    for _ in range(passes):
        ref = naive_hartigan_pass(points, weights, ref_sums, ref_totals, ref_labels)
        ref_labels, ref_sums, ref_totals = ref[0], ref[1], ref[2]
        cc2, _ = _k.center_geometry(sums / totals[:, None], order)
        moved, gain, shifted = _k.hartigan_pass(points, weights, sums, totals, labels, cc2,
                                                order, lower, wear)
        wear += shifted
        out.append((ref, labels.copy(), sums.copy(), totals.copy(), moved, gain))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bounds", ["none", "exact"])
def test_hartigan_pass_makes_the_moves_of_a_search_over_every_center(seed, bounds):
    """The kernel only compares the centers that can pay (given the lightest cluster and how far
    centers have moved during the pass), and skips the colors whose distance bound to the other
    centers rules them all out; a full search must find the same moves, pass after pass."""
    points, weights, start, sums, totals = _hartigan_case(seed)
    if bounds == "none":
        lower = np.zeros(len(points))
    else:
        d = np.sqrt(sq_distances(points, sums / totals[:, None]))
        d[np.arange(len(points)), start.labels] = np.inf
        lower = d.min(axis=1)
    for ref, labels, sums_k, totals_k, moved, gain in _kernel_passes(points, weights, start,
                                                                     sums, totals, lower):
        assert moved == ref[3] > 0
        np.testing.assert_array_equal(labels, ref[0])
        np.testing.assert_allclose(sums_k, ref[1], rtol=1e-9)
        np.testing.assert_allclose(totals_k, ref[2], rtol=1e-12)
        assert gain == pytest.approx(ref[4], rel=1e-9)


def test_hartigan_pass_with_bounds_too_high_misses_moves():
    """The bound test is live: bounds inflated past the truth skip colors that had to move."""
    points, weights, start, sums, totals = _hartigan_case(0)
    lower = np.full(len(points), 1e3)
    ref, labels, *_ = _kernel_passes(points, weights, start, sums, totals, lower, passes=1)[0]
    assert ref[3] > 0
    assert not np.array_equal(labels, ref[0])


@pytest.mark.parametrize("refine", [refine_by_moves, refine_by_swaps])
def test_refinements_lower_the_objective_and_end_at_a_lloyd_fixed_point(photo_points, refine):
    points, weights, _ = photo_points
    start = kmeans(points, weights, points[::53][:32].copy())
    r = refine(points, weights, start)
    assert r.objective <= start.objective
    assert r.objective == pytest.approx(objective(points, weights, r.centers, r.labels), rel=1e-9)
    means, _ = weighted_means(points, weights, r.labels, len(r.centers))
    np.testing.assert_allclose(r.centers, means, rtol=1e-9)
    # one more plain Lloyd step moves (almost) nothing: the result is a local minimum
    relabeled = nearest(points, r.centers)
    assert objective(points, weights, r.centers, relabeled) >= r.objective * (1 - 1e-3)


def test_swaps_escape_a_bad_local_minimum():
    # two tight pairs of blobs; both initial centers sit in the left pair, one blob on the right
    # is shared: Lloyd cannot fix it, a swap can
    rng = np.random.default_rng(0)
    blobs = [(-100, 0, 0), (-90, 0, 0), (100, 0, 0), (200, 0, 0)]
    points = np.vstack([np.array(b) + rng.normal(0, 1, (50, 3)) for b in blobs])
    weights = np.ones(len(points))
    init = np.array([[-100.0, 0, 0], [-90, 0, 0], [150, 0, 0]])
    stuck = kmeans(points, weights, init)
    better = refine_by_swaps(points, weights, stuck)
    assert better.objective < 0.2 * stuck.objective


def test_a_correct_first_guess_does_not_stop_lloyd_before_the_means_settle():
    pts = np.array([[0, 0, 0], [2, 0, 0], [10, 0, 0], [12, 0, 0]], float)
    init = pts[[0, 1]].copy()
    # the guess is already each point's nearest initial center: nothing changes in the first
    # assignment, but the centers still have to move to the means and the labels to follow
    r = kmeans(pts, np.ones(4), init, labels=nearest(pts, init))
    ref_centers, ref_labels, ref_obj, _ = lloyd(pts, np.ones(4), init)
    np.testing.assert_array_equal(r.labels, ref_labels)
    np.testing.assert_allclose(r.centers, ref_centers)
    assert r.objective == pytest.approx(ref_obj) == 4.0


def test_center_geometry_repairs_nearly_sorted_rows_and_reorders_scrambled_ones():
    rng = np.random.default_rng(5)
    centers = rng.random((64, 3)) * 255
    order = _k.new_order(centers)
    moved = centers + rng.normal(0, 2.0, centers.shape)  # a little: insertion sort
    moved[:8] = rng.random((8, 3)) * 255  # far: whole rows re-sorted
    start = order.copy()
    cc2, _ = _k.center_geometry(moved, order)
    for a in range(len(moved)):
        assert np.all(np.diff(cc2[a, order[a]]) >= 0)
        assert sorted(order[a].tolist()) == list(range(len(moved)))
    # its sorted distances come out of both ways of sorting a row
    ranked(moved, start)


def test_grid_labels_match_reference(photo_points):
    points, _, _ = photo_points
    rng = np.random.default_rng(2)
    low = points.min(axis=0)
    step = np.maximum(points.max(axis=0) - low, 1e-12) / 8
    best = rng.integers(0, 50, 512).astype(np.int32)
    np.testing.assert_array_equal(_k.grid_labels(points, low, step, 8, best),
                                  grid_labels(points, low, step, 8, best))


def test_lloyd_in_steps_with_progress_equals_one_call(photo_points):
    points, weights, _ = photo_points
    init = points[::41][:48].copy()
    calls = []
    a = kmeans(points, weights, init)
    b = kmeans(points, weights, init, progress=lambda stage, f: calls.append(f))
    assert len(calls) >= a.n_iter // 4 and calls == sorted(calls)
    assert (a.n_iter, a.converged, a.objective) == (b.n_iter, b.converged, b.objective)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)


def test_lloyd_gives_up_only_when_far_above_the_mark(photo_points):
    points, weights, _ = photo_points
    init = points[::41][:48].copy()
    full = kmeans(points, weights, init)
    hopeless = kmeans(points, weights, init, give_up_above=full.objective * 0.5)
    assert hopeless.n_iter < full.n_iter and not hopeless.converged
    # a mark the run stays well below is never given up on
    same = kmeans(points, weights, init, give_up_above=full.objective * 1.5)
    assert (same.n_iter, same.objective) == (full.n_iter, full.objective)


def test_seeding_from_draws_equals_kmeans_plus_plus(photo_points):
    points, weights, _ = photo_points
    a = kmeans_plus_plus(points, weights, 20, np.random.default_rng(4))
    b = seeding.from_draws(points, weights, seeding.draws(20, np.random.default_rng(4)))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [40, _k.RADIX_MIN + 72])  # merge sort, and radix sort rows
def test_new_order_is_a_stable_argsort_of_the_distances(k):
    rng = np.random.default_rng(8)
    centers = np.round(rng.random((k, 3)) * 8)  # small integers: many tied distances
    np.testing.assert_array_equal(_k.new_order(centers), neighbour_order(centers))


def test_radix_argsort_is_a_stable_argsort_when_keys_share_their_high_bits():
    """Keys that differ only in their low mantissa bits (the radix passes cannot tell them
    apart), exact ties among them, and zeros: NumPy's stable argsort."""
    rng = np.random.default_rng(14)
    keys = np.concatenate([1000.0 + rng.integers(0, 40, 150) * 2.0 ** -40,
                           rng.random(80) * 1e4, np.zeros(5), np.full(7, 3.0)])
    keys = keys[rng.permutation(len(keys))]
    out = np.empty(len(keys), np.int32)
    _k._radix_argsort(keys, out, np.empty_like(out), np.empty(256, np.int64))
    np.testing.assert_array_equal(out, np.argsort(keys, kind="stable"))


def _check_tracked_bounds(points, centers, labels, upper, second, lower_second, lower_rest):
    d = np.sqrt(((points[:, None] - centers[None]) ** 2).sum(axis=2))
    rows = np.arange(len(points))
    assert np.all(upper >= d[rows, labels] * (1 - 1e-12))
    assert np.all(lower_second <= d[rows, second] * (1 + 1e-12) + 1e-12)
    d[rows, labels] = np.inf
    d[rows, second] = np.inf
    assert np.all(lower_rest <= d.min(axis=1) * (1 + 1e-12) + 1e-12)


def test_assign_tracked_finds_the_nearest_center_and_keeps_valid_bounds(photo_points):
    points, _, _ = photo_points
    rng = np.random.default_rng(11)
    k = 40
    centers = points[rng.choice(len(points), k, replace=False)] + rng.random((k, 3))
    n = len(points)
    labels = rng.integers(0, k, n).astype(np.int32)  # any guess
    upper, second = np.full(n, np.inf), labels.copy()
    lower_second, lower_rest = np.zeros(n), np.zeros(n)
    order = _k.new_order(centers)
    no_far = np.full(k, np.inf)
    no_jumps = (np.empty((k, 0), np.int32), np.empty((k, 0)))
    fresh = np.zeros(k)  # rows sorted for the centers as they are
    for step in range(4):
        _, half = _k.center_geometry(centers, order)
        if step == 0:
            drift = np.zeros(k)
        table = ranked(centers, order.copy())
        _k.assign_tracked(points, centers, table, order, half, labels,
                          upper, second, lower_second, lower_rest, drift, float(drift.max()),
                          float(np.sort(drift)[-2]), int(np.argmax(drift)), no_far,
                          *_k.near_drift(order, table, drift, 5, fresh), *no_jumps, fresh)
        np.testing.assert_array_equal(labels, nearest(points, centers))
        _check_tracked_bounds(points, centers, labels, upper, second, lower_second, lower_rest)
        if step < 3:
            moved = centers + rng.normal(0, 1.5, centers.shape)
            drift = np.sqrt(((moved - centers) ** 2).sum(axis=1))
            centers = moved
    # a few centers jump far while the others stay: ``far`` stands in for their drift
    jumped = np.array([3, 17, 29])
    moved = centers.copy()
    moved[jumped] = points[rng.choice(n, 3, replace=False)]
    drift = np.sqrt(((moved - centers) ** 2).sum(axis=1))
    far = _k.jump_distances(moved, jumped)
    np.testing.assert_allclose(far, jump_distances(moved, jumped), rtol=1e-12)
    _, half = _k.center_geometry(moved, order)
    jumps = _k.jump_lists(moved, jumped)
    table = ranked(moved, order.copy())
    for lists in (no_jumps, jumps):  # with the jump lists: the same, by a shorter search
        state = [b.copy() for b in (labels, upper, second, lower_second, lower_rest)]
        _k.assign_tracked(points, moved, table, order, half, *state, drift,
                          0.0, 0.0, 0,
                          far.copy(), *_k.near_drift(order, table, drift, 5, fresh), *lists,
                          fresh)
        np.testing.assert_array_equal(state[0], nearest(points, moved))
        _check_tracked_bounds(points, moved, *state)


@pytest.mark.parametrize("spread", [0.3, 4.0])
def test_searches_on_rows_sorted_for_earlier_centers_stay_exact(photo_points, spread):
    """Rows sorted for the centers as they stood before a move (``stale``: how much nearer
    any center can have come): the half distances, the near-drift bounds and the assignment
    are those of the centers as they are."""
    points, _, _ = photo_points
    rng = np.random.default_rng(13)
    k = 48
    before = points[rng.choice(len(points), k, replace=False)] + rng.random((k, 3))
    n = len(points)
    order = _k.new_order(before)
    table = ranked(before, order)
    labels = nearest(points, before).astype(np.int32)
    upper, second = np.full(n, np.inf), labels.copy()
    lower_second, lower_rest = np.zeros(n), np.zeros(n)
    fresh, no_far = np.zeros(k), np.full(k, np.inf)
    no_jumps = (np.empty((k, 0), np.int32), np.empty((k, 0)))
    _, half = _k.center_geometry(before, order.copy())
    zero = np.zeros(k)
    _k.assign_tracked(points, before, table, order, half, labels, upper, second, lower_second,
                      lower_rest, zero, 0.0, 0.0, 0, no_far,
                      *_k.near_drift(order, table, zero, 5, fresh), *no_jumps, fresh)
    moved = before + rng.normal(0, spread, before.shape) * (rng.random((k, 1)) < 0.7)
    shift = np.sqrt(((moved - before) ** 2).sum(axis=1))
    stale = shift + shift.max() + 1e-6
    d = np.sqrt(sq_distances(moved, moved))
    np.fill_diagonal(d, np.inf)
    half = np.empty(k)
    _k.stale_half_min(moved, order, table, stale, half)
    np.testing.assert_allclose(half, 0.5 * d.min(axis=1), rtol=1e-12)
    drift = shift
    most, beyond = _k.near_drift(order, table, drift, 5, stale)
    for a in range(k):
        near = [j for j in order[a] if j != a][:5]
        assert most[a] == drift[near].max()
        outside = np.setdiff1d(np.arange(k), [a, *near])
        assert beyond[a] <= d[a, outside].min()
    top = int(np.argmax(drift))
    _k.assign_tracked(points, moved, table, order, half, labels, upper, second, lower_second,
                      lower_rest, drift, float(drift[top]), float(np.sort(drift)[-2]), top,
                      no_far, most, beyond, *no_jumps, stale)
    np.testing.assert_array_equal(labels, nearest(points, moved))
    _check_tracked_bounds(points, moved, labels, upper, second, lower_second, lower_rest)


def ranked(centers, order):
    """ranked_geometry's by-product, checked against NumPy's take_along_axis of its own
    distances and against center_geometry (the same table, half distances and order)."""
    plain = order.copy()
    cc2, half = _k.center_geometry(centers, plain)
    out = np.empty_like(cc2)
    cc2_r, half_r = _k.ranked_geometry(centers, order, out)
    np.testing.assert_array_equal(cc2_r, cc2)
    np.testing.assert_array_equal(half_r, half)
    np.testing.assert_array_equal(order, plain)
    np.testing.assert_array_equal(out, np.take_along_axis(cc2, order.astype(np.intp), axis=1))
    return out


def test_merge_jumps_sorts_the_rows_for_the_moved_centers():
    rng = np.random.default_rng(10)
    centers = rng.random((70, 3)) * 255
    order = _k.new_order(centers)
    moved = np.array([0, 5, 6, 33, 69])
    after = centers.copy()
    after[moved] = rng.random((5, 3)) * 255
    merged = _k.merge_jumps(after, order.copy(), *_k.jump_lists(after, moved))
    expected = ((after[:, None] - after[None]) ** 2).sum(axis=2)
    for a in range(len(after)):
        assert sorted(merged[a].tolist()) == list(range(len(after)))
        assert np.all(np.diff(expected[a, merged[a]]) >= 0)


def test_jump_lists_sort_the_moved_centers_by_distance():
    rng = np.random.default_rng(9)
    centers = np.round(rng.random((30, 3)) * 6)  # small integers: tied distances
    moved = np.array([4, 11, 12, 20, 27])
    order, d2 = _k.jump_lists(centers, moved)
    ref_order, ref_d2 = jump_lists(centers, moved)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(d2, ref_d2)


def test_kmeans_result_bounds_hold_for_its_centers(photo_points):
    points, weights, _ = photo_points
    r = kmeans(points, weights, points[::61][:24].copy())
    _check_tracked_bounds(points, r.centers, r.labels, *r.bounds)


@pytest.mark.parametrize("k", [16, 64])
def test_swaps_side_by_side_equal_swaps_in_turn(photo_points, k):
    import numba

    points, weights, _ = photo_points
    start = kmeans(points, weights, points[::37][:k].copy())
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # one thread: the rounds run one after the other
        alone = refine_by_swaps(points, weights, start)
    finally:
        numba.set_num_threads(threads)
    together = refine_by_swaps(points, weights, start)
    assert (alone.objective, alone.n_iter) == (together.objective, together.n_iter)
    np.testing.assert_array_equal(alone.labels, together.labels)
    np.testing.assert_array_equal(alone.centers, together.centers)


@pytest.mark.parametrize("count", [1, 5, 39, 60])
def test_near_drift_matches_reference(count):
    rng = np.random.default_rng(12)
    centers = rng.random((40, 3)) * 255
    drift = rng.random(40)
    order = _k.new_order(centers)
    most, beyond = _k.near_drift(order, ranked(centers, order), drift, count, np.zeros(40))
    ref_most, ref_beyond = near_drift(centers, drift, count)
    np.testing.assert_array_equal(most, ref_most)
    np.testing.assert_allclose(beyond, ref_beyond, rtol=1e-12)


def test_integral_points_are_told_apart():
    pts, w = np.array([[0, 255, 7.0], [3, 4, 5]]), np.array([2.0, 1.0])
    assert _k.all_integral(pts, w)
    assert not _k.all_integral(pts + np.array([0, 0, 0.5]), w)
    assert not _k.all_integral(pts, w + 0.25)
    assert not _k.all_integral(pts, np.array([2.0 ** 52, 1.0]))  # sums past 2**53: inexact


def test_lloyd_sums_by_moved_points_give_the_same_run(coffee, monkeypatch):
    # the exact histogram of a photo (integer colors and counts, over PARALLEL_MIN_POINTS
    # colors): its sums follow the moved colors alone; the run must be the one full sums give
    from kmq import kmeans as km

    h = histogram(np.ascontiguousarray(np.concatenate([coffee, coffee[:, ::-1] // 2 + 7])))
    points, weights = h.colors.astype(np.float64), h.counts.astype(np.float64)
    assert len(points) >= km.PARALLEL_MIN_POINTS and _k.all_integral(points, weights)
    init = points[np.random.default_rng(5).choice(len(points), 48, replace=False)]
    runs = {}
    for incremental in (True, False):
        monkeypatch.setattr(km._k, "all_integral", lambda p, w, on=incremental: on)
        runs[incremental] = kmeans(points, weights, init.copy(), tol=1e-6)
    a, b = runs[True], runs[False]
    assert a.n_iter == b.n_iter > 5
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)


def _recorded_sklearn() -> dict:
    """scikit-learn's full k-means error per (image, K), as benchmarks/sklearn_reference.py
    recorded it (centers rounded to 8 bits, every pixel to its nearest one)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sklearn_reference.json"
    return {(r["image"], r["k"]): r["mse"] for r in json.loads(path.read_text())["results"]}


_SHARED_PHOTOS = sorted({name for name, _ in _recorded_sklearn() if ":" not in name})


@pytest.mark.parametrize("k", [16, 64, 256])
@pytest.mark.parametrize("name", _SHARED_PHOTOS)
def test_error_at_or_below_recorded_sklearn_on_shared_photos(shared_images, name, k):
    """The whole engine on the 15 shared photos, full size: its error at or below scikit-learn's
    k-means fitted on every pixel, as recorded (fits that take up to 40 minutes each)."""
    from PIL import Image

    import kmq

    with Image.open(next(shared_images.rglob(name))) as im:
        rgb = np.asarray(im.convert("RGB"))  # the orientation does not change the colors
    assert kmq.quantize(rgb, k, seed=0).mse <= _recorded_sklearn()[(name, k)]
