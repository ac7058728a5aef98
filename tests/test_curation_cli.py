"""Curation through the command line: exact output, one-line errors, nothing
applied on bad input, and two processes deciding at once.
Tiny is train [1, 7, 4] and test [7, 1]."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from builders import random_digits, write_idx_pair
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app

TINY = Path(__file__).parent / "data" / "tiny"
RUN_CLI = Path(__file__).parent / "scripts" / "run_cli.py"
runner = CliRunner()


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def log_of(db_url: str) -> str:
    return run(db_url, "decisions", "--format", "csv")[1]


def test_relabel_exclude_tag_and_what_every_command_then_says(db_url: str) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    assert run(db_url, "relabel", "test:0", "2", "--note", "a 2", "--by", "ana") == (
        0, "Recorded 1 decision (#1): 1 relabelled\n", "",
    )  # fmt: skip
    assert run(db_url, "exclude", "train:1", "--reason", "smudge")[1] == (
        "Recorded 1 decision (#2): 1 excluded\n"
    )
    assert run(db_url, "tag", "reviewed", "--split", "train")[1] == (
        "Recorded 2 decisions (#3-#4): 2 tagged\n"
    )
    code, out, err = run(db_url, "query", "--split", "test")
    assert code == 0
    assert out.splitlines()[1].endswith(" (was 7)")
    assert err == ""
    code, out, err = run(db_url, "query", "--json", "--split", "train")
    rows = json.loads(out)
    assert [(r["index"], r["tags"]) for r in rows] == [(0, ["reviewed"]), (2, ["reviewed"])]
    assert err == "Left out 1 excluded image (--include-excluded keeps them)\n"
    assert json.loads(run(db_url, "count", "--json")[1]) == {"count": 4, "left_out": 1}
    assert run(db_url, "count", "--include-excluded")[1] == "5\n"
    assert run(db_url, "count", "--excluded")[1] == "1\n"
    assert run(db_url, "count", "--relabelled")[1] == "1\n"
    assert run(db_url, "count", "--without-tag", "reviewed")[1] == "2\n"
    assert run(db_url, "count", "--label", "7", "--original-labels")[1] == "1\n"
    code, out, _ = run(db_url, "count", "--by", "label", "--split", "test", "--json")
    assert json.loads(out) == [
        {"label": 1, "name": "1", "count": 1},
        {"label": 2, "name": "2", "count": 1},
    ]
    code, out, _ = run(db_url, "history", "test:0")
    lines = out.splitlines()
    assert lines[0] == "tiny test:0: label 2 (source: 7)"
    assert lines[1].startswith("#1  ")
    assert lines[1].endswith("  ana  relabel 2  a 2")
    history = json.loads(run(db_url, "history", "test:0", "--json")[1])
    assert [(h["id"], h["label"], h["by"], h["original_label"]) for h in history] == [
        (1, 2, "ana", 7)
    ]
    assert run(db_url, "undo", "2")[1] == "Recorded 1 decision (#5): 1 included\n"
    assert run(db_url, "count")[1] == "5\n"
    decisions = json.loads(run(db_url, "decisions", "--json", "--by", "ana")[1])
    assert [d["id"] for d in decisions] == [1]
    assert run(db_url, "decisions", "--since", "2999-01-01")[1] == "No decisions.\n"
    assert run(db_url, "untag", "reviewed", "train:0")[1] == (
        "Recorded 1 decision (#6): 1 untagged\n"
    )


def test_bad_input_is_one_line_exit_1_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    run(db_url, "tag", "seen", "test:1")
    before = log_of(db_url)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("split,index,label\ntest,0,3\ntest,1,3\ntest,5,3\n", encoding="utf-8")
    cases = {
        ("relabel", "test:9", "3"): "Error: No image test:9 in dataset tiny\n",
        ("relabel", "test:0", "11"): (
            "Error: Label '11' is not in the label set: expected one of 0, 1, 2, 3, 4, 5, 6, 7, "
            "8, 9\n"
        ),
        ("exclude", "test:0", "train:7", "--reason", "x"): "Error: No image train:7 in dataset tiny\n",
        ("untag", "nothing", "test:0"): (
            "Error: Unknown tag 'nothing': no image carries it (tags in use: seen)\n"
        ),
        ("apply", str(bad_csv)): f"Error: {bad_csv} line 4: No image test:5 in dataset tiny\n",
        ("relabel", "test0", "3"): (
            "Error: Image 'test0' is not SPLIT:INDEX (for example test:1530)\n"
        ),
        ("decisions", "--since", "yesterday"): (
            "Error: --since 'yesterday' is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM\n"
        ),
    }  # fmt: skip
    for args, message in cases.items():
        assert run(db_url, *args) == (1, "", message), args
    assert run(db_url, "tag", "everything")[0] == 2  # neither images nor filters
    assert log_of(db_url) == before


def test_apply_dry_run_then_apply_then_round_trip(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    good = tmp_path / "good.csv"
    good.write_text(
        "split,index,action,label,tag,note\n"
        "test,0,relabel,2,,\ntrain,2,exclude,,,blurry\ntrain,0,tag,,suspect,\n",
        encoding="utf-8",
    )
    assert run(db_url, "apply", str(good), "--dry-run") == (
        0, "Would record 3 decisions: 1 relabelled, 1 excluded, 1 tagged\n", "",
    )  # fmt: skip
    assert log_of(db_url).count("\n") == 1  # the header only
    assert run(db_url, "apply", str(good), "--by", "eve")[1] == (
        "Recorded 3 decisions (#1-#3): 1 relabelled, 1 excluded, 1 tagged\n"
    )
    exported = tmp_path / "log.csv"
    exported.write_text(log_of(db_url), encoding="utf-8")
    other = str(tmp_path / "other.db")
    run(other, "ingest", str(TINY), "--dataset", "tiny")
    assert run(other, "apply", str(exported))[0] == 0
    assert (
        run(other, "query", "--json", "--include-excluded")[1]
        == run(db_url, "query", "--json", "--include-excluded")[1]
    )


def test_audit_tag_names_findings_and_label_errors_skip_reviewed(
    db_url: str, tmp_path: Path
) -> None:
    pixels, labels = random_digits(200, seed=3)
    write_idx_pair(tmp_path / "src", "train", pixels[:150], labels[:150])
    write_idx_pair(tmp_path / "src", "t10k", pixels[150:], labels[150:])
    run(db_url, "ingest", str(tmp_path / "src"), "--dataset", "digits")
    base = ["audit", "--check", "label-errors", "--split", "test", "--json"]
    _, out, err = run(db_url, *base, "--tag", "suspect")
    suspects = json.loads(out)["summary"]["label-errors"]["digits"]["suspects"]
    assert suspects >= 3
    assert err.startswith(f"Recorded {suspects} decisions")
    with Catalog.open(db_url) as catalog:
        assert catalog.select(tag="suspect").count() == suspects
        first = catalog.select(tag="suspect", limit=3).rows()
        catalog.tag("reviewed", [f"{r.split}:{r.index}" for r in first[:2]])
        assert first[2].label is not None
        catalog.relabel(f"{first[2].split}:{first[2].index}", first[2].label)  # unchanged
    again = json.loads(run(db_url, *base)[1])
    summary = again["summary"]["label-errors"]["digits"]
    assert summary["skipped_reviewed"] == 2
    assert summary["suspects"] == suspects - 2
    flagged = {(f["images"][0]["split"], f["images"][0]["index"]) for f in again["findings"]}
    assert not flagged & {(r.split, r.index) for r in first[:2]}
    text = run(db_url, *base[:-1])[1]
    assert "skipped 2 suspects in digits already reviewed" in text


def test_two_processes_deciding_at_once_both_land_in_order(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    procs = [
        subprocess.Popen(
            [sys.executable, str(RUN_CLI), "--db", db_url, "apply", str(csv_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for csv_path in _two_files(tmp_path)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    with Catalog.open(db_url) as catalog:
        log = catalog.decisions()
    assert [r.id for r in log] == list(range(1, 11))
    for who in ("p1", "p2"):
        mine = [r.id for r in log if r.by == who]
        assert mine == list(range(mine[0], mine[0] + 5))  # each batch lands whole, in order


def _two_files(where: Path) -> list[Path]:
    paths = []
    for who, tag in (("p1", "one"), ("p2", "two")):
        rows = "".join(f"{s},{i},tag,{tag},{who}\n" for s, i in
                       [("train", 0), ("train", 1), ("train", 2), ("test", 0), ("test", 1)])  # fmt: skip
        path = where / f"{who}.csv"
        path.write_text("split,index,action,tag,by\n" + rows, encoding="utf-8")
        paths.append(path)
    return paths
