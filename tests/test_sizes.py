import pytest

from scalebench.sizes import LADDERS, TIERS, parse_bytes, parse_ladder, parse_multiple, parse_rows


@pytest.mark.parametrize("text, rows", [("tiny", TIERS["tiny"]), ("paper", 30_000_000), ("10M", 10_000_000),
                                        ("2.5e7", 25_000_000), ("1_000", 1000), ("50k", 50_000), (7, 7)])
def test_rows(text, rows):
    assert parse_rows(text) == rows


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "ten", "", "nan", "inf"])
def test_bad_rows(text):
    with pytest.raises(ValueError, match="--rows"):
        parse_rows(text)


@pytest.mark.parametrize("text, n", [("2GiB", 2 * 2**30), ("512MB", 512 * 10**6), ("1.5g", int(1.5 * 2**30)),
                                     ("100", 100)])
def test_bytes(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["0", "2XB", "-1GiB", "lots"])
def test_bad_bytes(text):
    with pytest.raises(ValueError, match="--memory-budget"):
        parse_bytes(text)


def test_multiple():
    assert parse_multiple("1.2") == 1.2
    with pytest.raises(ValueError, match="--memory-multiple"):
        parse_multiple("0")


def test_a_ladder_is_sizes_smallest_first_each_once():
    assert [r.rows for r in parse_ladder("10M,1M,tiny,1_000_000")] == [20_000, 1_000_000, 10_000_000]
    assert [r.label for r in parse_ladder("ladder")] == list(LADDERS["ladder"])
    assert [r.label for r in parse_ladder("2.5M")] == ["2.5M"]
    multiples = parse_ladder("small", "1.2, 0.25,0.5")  # multiples of the budget set the sizes
    assert [(r.label, r.multiple, r.rows) for r in multiples] == [("x0.25", 0.25, None), ("x0.5", 0.5, None),
                                                                  ("x1.2", 1.2, None)]


def test_a_bad_rung_is_named():
    with pytest.raises(ValueError, match="--scale: 'lots'"):
        parse_ladder("1M,lots")
    with pytest.raises(ValueError, match="--memory-multiple: '-1'"):
        parse_ladder("small", "0.5,-1")
    with pytest.raises(ValueError, match="names no size"):
        parse_ladder(" , ")
