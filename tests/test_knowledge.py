"""The guideline corpus and its Chroma index: parsing, chunking, retrieval quality, persistence, repair."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.corpus import (
    BUILTIN_DIR, MAX_CHUNK_CHARS, GuidelineError, chunk_document, load_corpus, parse_document, read_text_file,
)
from guideline_fixtures import index_dir  # noqa: F401 (shared fixture)
from knowledge.index import GuidelineIndex, IndexStoreError
from models.classes import CLASSES, ORGANS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def index(index_dir: Path) -> GuidelineIndex:
    return GuidelineIndex(index_dir)


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    """Two short built-in-style documents, so index-maintenance tests embed only a few chunks."""
    folder = tmp_path / "guidelines"
    folder.mkdir()
    for name, organ, cls, topic in (("alpha", "lung", "normal", "lung sliding and A-lines"),
                                    ("beta", "breast", "breast_benign", "oval circumscribed masses")):
        (folder / f"{name}.md").write_text(
            f"---\ntitle: {name.title()} notes\nsource: Test source for {name} (2024)\norgans: [{organ}]\n"
            f"classes: [{cls}]\nyear: 2024\n---\n\n## Findings\nThis note is about {topic}.\n\n"
            f"## Management\nFollow the local protocol for {topic}.\n")
    return folder


# -- corpus ---------------------------------------------------------------------------------
def test_builtin_corpus_is_complete_and_well_formed() -> None:
    docs = load_corpus()
    assert len(docs) >= 10
    for doc in docs:
        assert doc.source and doc.title and doc.organs and doc.classes, doc.path
        assert len({line for line in doc.body.splitlines() if line.startswith("## ")}) >= 3, doc.path
    assert {c for d in docs for c in d.classes} == set(CLASSES)
    assert {o for d in docs for o in d.organs} == set(ORGANS)
    chunks = [c for d in docs for c in chunk_document(d)]
    ids = [c.id for c in chunks]
    assert len(ids) == len(set(ids))
    assert all(len(c.text) <= MAX_CHUNK_CHARS and c.section and c.id.startswith(f"{c.document}#") for c in chunks)
    assert 60 <= len(chunks) <= 300


def test_long_sections_split_by_paragraph_with_heading_path(tmp_path: Path) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i}: " + "echo pattern " * 40 for i in range(6))
    path = tmp_path / "long.md"
    path.write_text(f"---\ntitle: Long\nsource: Test\n---\n## Big section\n### Detail\n{paragraphs}\n")
    chunks = chunk_document(parse_document(path))
    assert [c.id for c in chunks][:3] == ["long#detail", "long#detail-2", "long#detail-3"]
    assert all(c.section == "Big section > Detail" and len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert "".join(c.text for c in chunks).count("Paragraph") == 6


def test_plain_text_user_document_gets_title_and_source_from_its_name(tmp_path: Path) -> None:
    path = tmp_path / "st_mary_gallbladder_policy.txt"
    path.write_text("Polyps of 6 mm or more are discussed at the weekly hepatobiliary meeting.\n")
    doc = parse_document(path, user=True)
    assert (doc.slug, doc.title, doc.source) == (
        "user-st-mary-gallbladder-policy", "St mary gallbladder policy", "user-provided: st_mary_gallbladder_policy.txt")
    assert [c.id for c in chunk_document(doc)] == ["user-st-mary-gallbladder-policy#st-mary-gallbladder-policy"]


@pytest.mark.parametrize("name,content,problem", [
    ("empty.md", b"", "empty file"),
    ("blank.txt", b"  \n\n", "only whitespace"),
    ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
    ("latin1.txt", "Échographie".encode("latin-1"), "not UTF-8"),
    ("scan.pdf", b"%PDF-1.4", "unsupported file type"),
    ("bad_front.md", b"---\ntitle: [unclosed\n---\ntext\n", "invalid YAML front matter"),
])
def test_bad_guideline_files_give_one_line_errors(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(GuidelineError) as err:
        parse_document(path, user=True)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value) and "\n" not in str(err.value)


def test_huge_and_missing_files_are_rejected(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(3 * 2**20)
    with pytest.raises(GuidelineError, match="too large"):
        read_text_file(huge)
    with pytest.raises(GuidelineError, match="no such file"):
        read_text_file(tmp_path / "missing.md")


def test_unreadable_file_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.md"
    path.write_text("## A\ntext\n")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(GuidelineError) as err:
        read_text_file(path)
    assert str(err.value) == f"{path}: cannot read file (Permission denied)"


def test_builtin_documents_must_name_their_source(tmp_path: Path) -> None:
    path = tmp_path / "nosource.md"
    path.write_text("---\ntitle: X\norgans: [lung]\n---\n## A\ntext\n")
    with pytest.raises(GuidelineError, match="source"):
        parse_document(path)
    path.write_text("---\ntitle: X\nsource: S\nclasses: [thyroid_nodule]\n---\n## A\ntext\n")
    with pytest.raises(GuidelineError, match="unknown classes thyroid_nodule; known: breast_benign"):
        parse_document(path)


# -- retrieval quality ------------------------------------------------------------------------
KNOWN_ANSWERS = [
    ("BI-RADS 4B biopsy", "breast-birads-assessment#category-4b"),
    ("Tokyo Guidelines grade II", "gallbladder-tokyo-guidelines-2018#tg18-severity-grade-ii"),
    ("B-lines subpleural consolidation COVID", "lung-covid19-patterns#"),
    ("gallbladder polyp size follow-up interval", "gallbladder-polyps#"),
    ("dynamic air bronchogram", "lung-bacterial-pneumonia#"),
    ("normal lung sliding with A-lines", "lung-normal#"),
    ("A-profile B-profile PLAPS lung point", "lung-blue-protocol#"),
    ("spiculated margin, not parallel, posterior shadowing", "breast-birads-lexicon#"),
    ("GB-RADS category for diffuse wall thickening", "gallbladder-gb-rads#"),
    ("anechoic pleural effusion quad sign sinusoid", "lung-pleural-effusion#"),
    ("when should an AI classifier abstain and escalate to a clinician", "ai-assisted-ultrasound-limits#"),
    ("LUS score 0 to 3 per zone", "lung-covid19-patterns#lus-score"),
]


@pytest.mark.parametrize("query,expected", KNOWN_ANSWERS)
def test_known_answer_queries_rank_the_right_passage_in_top_3(index: GuidelineIndex, query: str,
                                                               expected: str) -> None:
    ids = [p["id"] for p in index.search(query, k=3)]
    assert any(i.startswith(expected) for i in ids), (query, ids)


def test_passages_carry_citation_fields_and_sorted_scores(index: GuidelineIndex) -> None:
    passages = index.search("sonographic Murphy sign", k=5)
    assert len(passages) == 5
    assert set(passages[0]) == {"id", "document", "title", "section", "source", "text", "classes", "organs", "score"}
    scores = [p["score"] for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert passages[0]["document"].startswith("gallbladder") and "Tokyo" in passages[0]["source"]
    json.dumps(passages)


def test_filters_by_class_and_organ(index: GuidelineIndex) -> None:
    query = "consolidation with air bronchogram"
    for passage in index.search(query, k=8, classes=["breast_malignant"]):
        assert "breast_malignant" in passage["classes"]
    for passage in index.search(query, k=8, organ="gallbladder"):
        assert "gallbladder" in passage["organs"]
    both = index.search(query, k=8, classes=["covid-19", "normal"], organ="lung")
    assert both and all({"covid19", "normal"} & set(p["classes"]) and "lung" in p["organs"] for p in both)
    with pytest.raises(ValueError, match="unknown class 'thyroid'; known: breast_benign"):
        index.search(query, classes=["thyroid"])
    with pytest.raises(ValueError, match="unknown organ 'liver'; known: breast, gallbladder, lung"):
        index.search(query, organ="liver")


def test_reopened_in_a_new_process_gives_the_same_answer(index: GuidelineIndex, index_dir: Path) -> None:
    query = "Tokyo Guidelines grade III organ dysfunction"
    expected = [p["id"] for p in index.search(query, k=5)]
    code = ("import json, sys; from knowledge.index import GuidelineIndex; "
            f"print(json.dumps([p['id'] for p in GuidelineIndex(sys.argv[1]).search({query!r}, k=5)]))")
    out = subprocess.run([sys.executable, "-c", code, str(index_dir)], cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


# -- index maintenance ------------------------------------------------------------------------
def test_incremental_sync_reembeds_only_changed_documents(tmp_path: Path, small_corpus: Path) -> None:
    index = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus)
    first = index.sync()
    assert sorted(first.added) == ["alpha", "beta"] and first.chunks_embedded == 4
    assert index.sync().chunks_embedded == 0
    path = small_corpus / "alpha.md"
    path.write_text(path.read_text().replace("## Management", "## Extra\nPleural line notes.\n\n## Management"))
    second = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus).sync()
    assert (second.updated, second.unchanged, second.chunks_embedded) == (["alpha"], ["beta"], 3)
    (small_corpus / "beta.md").unlink()
    third = index.sync()
    assert third.removed == ["beta"] and third.chunks_embedded == 0
    assert index.stats()["chunks"] == 3 and {p["document"] for p in index.search("notes", k=5)} == {"alpha"}


@pytest.mark.parametrize("damage", ["garbage_sqlite", "store_is_a_file"])
def test_corrupt_index_is_rebuilt_with_a_warning(tmp_path: Path, small_corpus: Path, damage: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    GuidelineIndex(tmp_path / "built", builtin_dir=small_corpus).sync()
    shutil.copytree(tmp_path / "built", tmp_path / "damaged")
    store = tmp_path / "damaged" / "chroma"
    if damage == "garbage_sqlite":
        (store / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    else:
        shutil.rmtree(store)
        store.write_text("oops")
    index = GuidelineIndex(tmp_path / "damaged", builtin_dir=small_corpus)
    report = index.sync()
    assert report.rebuilt and "rebuilding" in report.messages[0] and "rebuilding" in caplog.text
    assert sorted(report.added) == ["alpha", "beta"]
    assert index.search("A-lines", k=1)[0]["document"] == "alpha"


def test_store_damaged_while_open_is_rebuilt_on_the_next_query(tmp_path: Path, small_corpus: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    index = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus)
    index.sync()
    with contextlib.closing(sqlite3.connect(index.store_dir / "chroma.sqlite3")) as db:
        db.execute("DROP TABLE embedding_metadata")
        db.commit()
    assert index.search("A-lines", k=1)[0]["document"] == "alpha"
    assert "guideline index unreadable" in caplog.text and index.stats()["chunks"] == 4


def test_user_documents_survive_rebuild_and_bad_files_change_nothing(tmp_path: Path, small_corpus: Path) -> None:
    index = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus)
    index.sync()
    policy = tmp_path / "hospital_polyp_policy.md"
    policy.write_text("# Hospital polyp policy\n\n## Referral\nEvery gallbladder polyp of 6 mm or more "
                      "is discussed at the hepatobiliary meeting.\n")
    docs, report = index.add_files([policy])
    assert [d.slug for d in docs] == ["user-hospital-polyp-policy"] and report.added == ["user-hospital-polyp-policy"]
    hit = index.search("gallbladder polyp referral", k=1)[0]
    assert hit["id"] == "user-hospital-polyp-policy#referral"
    assert hit["source"] == "user-provided: hospital_polyp_policy.md" and hit["title"] == "Hospital polyp policy"

    before = index.stats()
    good, binary = tmp_path / "good.txt", tmp_path / "scan.md"
    good.write_text("A perfectly fine note.\n")
    binary.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(GuidelineError, match="scan.md: binary file"):
        index.add_files([good, binary])
    assert not (index.user_dir / "good.txt").exists() and index.stats() == before

    rebuilt = index.sync(rebuild=True)
    assert sorted(rebuilt.added) == ["alpha", "beta", "user-hospital-polyp-policy"]
    assert index.search("gallbladder polyp referral", k=1)[0]["id"] == "user-hospital-polyp-policy#referral"


def test_search_rejects_empty_query_and_k_out_of_range(index: GuidelineIndex) -> None:
    for kwargs in ({"query": "  "}, {"query": "x", "k": 0}, {"query": "x", "k": 21}):
        with pytest.raises(ValueError):
            index.search(**kwargs)


@pytest.fixture()
def chroma_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real Chroma server (``chroma run``) on a free local port."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.is_file():
        pytest.skip("the chroma server executable is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(exe), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.3)
        else:
            pytest.fail("chroma server did not start within 60 s")
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_chroma_server_over_http(tmp_path: Path, small_corpus: Path, chroma_server: tuple[str, int],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = chroma_server
    monkeypatch.setenv("AUTOUS_CHROMA_HOST", host)
    monkeypatch.setenv("AUTOUS_CHROMA_PORT", str(port))
    index = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus)
    assert index.location == f"http://{host}:{port}"
    assert sorted(index.sync().added) == ["alpha", "beta"] and index.sync().chunks_embedded == 0
    assert index.search("A-lines", k=1, organ="lung")[0]["id"] == "alpha#findings"
    assert not (tmp_path / "idx" / "chroma").exists()


def test_unreachable_chroma_server_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AUTOUS_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTOUS_CHROMA_PORT", str(port))
    with pytest.raises(IndexStoreError, match=rf"^http://127.0.0.1:{port}: cannot use the Chroma server"):
        GuidelineIndex(tmp_path / "idx").sync()


def test_index_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "idx").write_text("not a folder")
    with pytest.raises(IndexStoreError, match="cannot use the index folder") as err:
        GuidelineIndex(tmp_path / "idx").sync()
    assert str(err.value) == f"{tmp_path / 'idx'}: cannot use the index folder (File exists)"


def test_add_into_an_unusable_index_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "idx").write_text("not a folder")
    doc = tmp_path / "policy.md"
    doc.write_text("## Policy\nEscalate uncertain findings.\n")
    with pytest.raises(GuidelineError) as err:
        GuidelineIndex(tmp_path / "idx").add_files([doc])
    assert str(err.value).startswith(f"{tmp_path / 'idx' / 'user'}: cannot copy guideline files into the index (")


def test_add_a_folder_and_replace_a_document_in_another_format(tmp_path: Path, small_corpus: Path) -> None:
    index = GuidelineIndex(tmp_path / "idx", builtin_dir=small_corpus)
    index.sync()
    folder = tmp_path / "hospital"
    folder.mkdir()
    (folder / "triage.md").write_text("## Triage\nTG18 grade III cholecystitis goes to the ICU team.\n")
    (folder / "breast.txt").write_text("BI-RADS 5 lesions are biopsied within one week.\n")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04")  # not a guideline format: ignored in a folder
    docs, report = index.add_files([folder])
    assert sorted(report.added) == ["user-breast", "user-triage"] and len(docs) == 2
    replacement = tmp_path / "breast.md"
    replacement.write_text("## Biopsy\nBI-RADS 5 lesions are biopsied within three days.\n")
    _, report = index.add_files([replacement])
    assert report.updated == ["user-breast"] and sorted(p.name for p in index.user_dir.iterdir()) == [
        "breast.md", "triage.md"]
    assert index.search("BI-RADS 5 biopsy timing", k=1)[0]["id"] == "user-breast#biopsy"
    with pytest.raises(GuidelineError, match="folder holds no .md or .txt files"):
        index.add_files([tmp_path / "idx" / "chroma"])
