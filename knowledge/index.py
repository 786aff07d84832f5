"""The guideline index: the corpus embedded into Chroma, kept in step with the files.

Layout of an index directory (default ``$AUTOUS_INDEX_DIR`` or ``~/.cache/autous/index``)::

    chroma/   the embedded Chroma store (unused when a Chroma server is configured)
    user/     guideline files added with ``autous index add`` (kept across rebuilds)

Each chunk stores its document's content hash, so :meth:`GuidelineIndex.sync` re-embeds
only documents that changed and removes deleted ones. A store that cannot be opened is
wiped and rebuilt with a warning; the user's files are never touched by that.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.corpus import BUILTIN_DIR, SUFFIXES, Document, GuidelineError, chunk_document, parse_document
from knowledge.embeddings import MODEL_NAME, MiniLMEmbeddingFunction, embed
from models.classes import CLASSES, ORGANS, resolve_class
from models.errors import UserError

log = logging.getLogger(__name__)

COLLECTION = "autous_guidelines"
MAX_K = 20
CANDIDATES = 40  # dense candidates re-ranked with the keyword bonus
KEYWORD_WEIGHT = 0.2
_STOPWORDS = frozenset(
    "a an and are as at be by for from how in is it of on or the to what when which with".split())


class IndexStoreError(UserError):
    """The index store cannot be used (e.g. the configured Chroma server is unreachable)."""


def default_index_dir() -> Path:
    """``$AUTOUS_INDEX_DIR`` or ``~/.cache/autous/index``."""
    return Path(os.environ.get("AUTOUS_INDEX_DIR") or "~/.cache/autous/index").expanduser()


@dataclass
class SyncReport:
    """What one :meth:`GuidelineIndex.sync` did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    rebuilt: bool = False
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)


class GuidelineIndex:
    """The corpus in a Chroma collection: incremental sync, user documents, filtered search."""

    def __init__(self, index_dir: str | Path | None = None, host: str | None = None,
                 port: int | str | None = None, builtin_dir: Path = BUILTIN_DIR) -> None:
        self.index_dir = Path(index_dir).expanduser() if index_dir else default_index_dir()
        self.user_dir = self.index_dir / "user"
        self.store_dir = self.index_dir / "chroma"
        self.host = host or os.environ.get("AUTOUS_CHROMA_HOST") or None
        raw_port = port or os.environ.get("AUTOUS_CHROMA_PORT") or 8000
        try:
            self.port = int(raw_port)
        except ValueError:
            raise IndexStoreError(f"AUTOUS_CHROMA_PORT: not a port number: {raw_port!r}") from None
        self.builtin_dir = Path(builtin_dir)
        self._collection: Any = None
        self._synced = False
        self._pending_messages: list[str] = []
        self._known: tuple[list[str], list[str]] | None = None
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        """Where the vectors live: the store path or the server address."""
        return f"http://{self.host}:{self.port}" if self.host else str(self.store_dir)

    # -- opening ---------------------------------------------------------------------------
    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.host:
            return chromadb.HttpClient(host=self.host, port=self.port, settings=settings)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.store_dir), settings=settings)

    def _open_collection(self, fresh: bool = False) -> Any:
        client = self._client()
        if fresh:
            with contextlib.suppress(Exception):
                client.delete_collection(COLLECTION)
        collection = client.get_or_create_collection(
            COLLECTION,
            embedding_function=MiniLMEmbeddingFunction(),
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": MODEL_NAME},
        )
        collection.count()  # touches the store: fails here if it is corrupt
        return collection

    def _wipe_store(self) -> None:
        from chromadb.api.shared_system_client import SharedSystemClient

        system = SharedSystemClient._identifier_to_system.pop(str(self.store_dir), None)
        with contextlib.suppress(Exception):
            if system is not None:
                system.stop()
        shutil.rmtree(self.store_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.store_dir.unlink()  # a file where the store folder should be

    def collection(self, fresh: bool = False) -> Any:
        """The Chroma collection; an unreadable local store is wiped and recreated (with a warning)."""
        with self._lock:
            if self._collection is not None and not fresh:
                return self._collection
            try:
                self._collection = self._open_collection(fresh)
            except Exception as exc:  # noqa: BLE001 (any store failure means: rebuild)
                self._reset_store(exc)
                self._collection = self._open_collection()
            return self._collection

    def _reset_store(self, exc: Exception) -> None:
        """Wipe a local store that failed (the next sync rebuilds it); a failing server is an error."""
        if self.host:
            raise IndexStoreError(f"{self.location}: cannot use the Chroma server ({exc})") from None
        msg = f"{self.store_dir}: guideline index unreadable ({type(exc).__name__}: {exc}); rebuilding it"
        log.warning(msg)
        self._wipe_store()
        self._collection = None
        self._synced = False
        self._known = None
        self._pending_messages.append(msg)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise writers across processes sharing this index directory."""
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.index_dir / ".lock", "w")  # closed by the with below
        except OSError as exc:
            raise IndexStoreError(f"{self.index_dir}: cannot use the index folder ({exc.strerror or exc})") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- building --------------------------------------------------------------------------
    def documents(self, messages: list[str] | None = None) -> list[Document]:
        """Built-in documents (must be valid) and the user's (an invalid one is skipped, with a message)."""
        docs = [parse_document(p) for p in sorted(self.builtin_dir.glob("*.md"))]
        if self.user_dir.is_dir():
            for path in sorted(self.user_dir.iterdir()):
                if path.suffix.lower() not in SUFFIXES:
                    continue
                try:
                    docs.append(parse_document(path, user=True))
                except GuidelineError as exc:
                    log.warning("skipping %s", exc)
                    if messages is not None:
                        messages.append(f"skipped {exc}")
        return docs

    def sync(self, rebuild: bool = False) -> SyncReport:
        """Bring the store in step with the files: embed new/changed documents, drop deleted ones."""
        start = time.perf_counter()
        report = SyncReport(rebuilt=rebuild)
        with self._lock, self._file_lock():
            collection = self.collection(fresh=rebuild)
            try:
                got = collection.get(include=["metadatas"])
            except Exception as exc:  # noqa: BLE001 (opened but unreadable: rebuild)
                self._reset_store(exc)
                collection = self.collection()
                got = {"ids": [], "metadatas": []}
            report.messages += self._pending_messages
            report.rebuilt |= bool(self._pending_messages)
            self._pending_messages = []
            docs = self.documents(report.messages)
            stored: dict[str, tuple[str, list[str]]] = {}
            for cid, meta in zip(got["ids"], got["metadatas"]):
                stored.setdefault(meta["document"], (meta.get("doc_sha", ""), []))[1].append(cid)
            todo: list[Document] = []
            for doc in docs:
                if doc.slug not in stored:
                    report.added.append(doc.slug)
                    todo.append(doc)
                elif stored[doc.slug][0] != doc.sha:
                    report.updated.append(doc.slug)
                    todo.append(doc)
                else:
                    report.unchanged.append(doc.slug)
            current = {d.slug for d in docs}
            report.removed = sorted(s for s in stored if s not in current)
            stale = [cid for slug in report.removed + report.updated for cid in stored[slug][1]]
            if stale:
                collection.delete(ids=stale)
            report.chunks_embedded = self._add(collection, todo)
            self._synced = True
            self._known = ([*CLASSES, *sorted({c for d in docs for c in d.classes} - set(CLASSES))],
                           [*ORGANS, *sorted({o for d in docs for o in d.organs} - set(ORGANS))])
        report.seconds = time.perf_counter() - start
        return report

    @staticmethod
    def _add(collection: Any, docs: Iterable[Document], batch: int = 128) -> int:
        chunks = [(doc, c) for doc in docs for c in chunk_document(doc)]
        for i in range(0, len(chunks), batch):
            part = chunks[i:i + batch]
            collection.add(
                ids=[c.id for _, c in part],
                documents=[c.text for _, c in part],
                embeddings=embed([c.embedding_text() for _, c in part]),
                metadatas=[_metadata(doc, c) for doc, c in part],
            )
        return len(chunks)

    def ensure(self) -> None:
        """Sync once per process (first use builds the index)."""
        if not self._synced:
            self.sync()

    def add_files(self, paths: Iterable[str | Path]) -> tuple[list[Document], SyncReport]:
        """Validate every file first, then copy them into ``user/`` and sync; a bad file changes nothing."""
        files: list[Path] = []
        for raw in paths:
            path = Path(raw).expanduser()
            if path.is_dir():
                found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
                if not found:
                    raise GuidelineError(f"{path}: folder holds no .md or .txt files")
                files += found
            else:
                files.append(path)
        if not files:
            raise GuidelineError("index add: no files given")
        docs = [parse_document(p, user=True) for p in files]
        names = Counter(d.slug for d in docs)
        clash = [d.path for d in docs if names[d.slug] > 1]
        if clash:
            raise GuidelineError(f"{clash[0]}: another file given has the same name stem; rename one")
        try:
            self.user_dir.mkdir(parents=True, exist_ok=True)
            for doc in docs:
                for old in self.user_dir.glob(f"{doc.path.stem}.*"):
                    if old.name != doc.path.name and old.suffix.lower() in SUFFIXES:
                        old.unlink()  # same document name, other format: the new file replaces it
                target = self.user_dir / doc.path.name
                if target.resolve() != doc.path.resolve():
                    tmp = target.with_name(f".{target.name}.tmp")
                    shutil.copyfile(doc.path, tmp)
                    os.replace(tmp, target)
        except OSError as exc:
            raise GuidelineError(f"{self.user_dir}: cannot copy guideline files into the index "
                                 f"({exc.strerror or exc})") from None
        return docs, self.sync()

    # -- querying --------------------------------------------------------------------------
    def _read(self, read: Callable[[Any], Any]) -> Any:
        """``read(collection)``; a store that fails to read is rebuilt once and read again."""
        self.ensure()
        try:
            return read(self.collection())
        except Exception as exc:  # noqa: BLE001 (a damaged store is rebuilt, then read again)
            with self._lock, self._file_lock():  # never wipe while a sync (thread or process) writes
                self._reset_store(exc)
            self.ensure()
            return read(self.collection())

    def known_filters(self) -> tuple[list[str], list[str]]:
        """Class ids and organs a filter may name: the registry's plus any used by indexed documents."""
        self.ensure()
        return self._known or (list(CLASSES), list(ORGANS))

    def _where(self, classes: list[str] | None, organ: str | None) -> dict | None:
        known_classes, known_organs = self.known_filters()
        clauses: list[dict] = []
        if classes:
            ids = []
            for name in classes:
                try:
                    ids.append(resolve_class(name).id)
                except KeyError:
                    if name not in known_classes:
                        raise ValueError(f"unknown class {name!r}; known: {', '.join(known_classes)}") from None
                    ids.append(name)
            flags = [{f"class_{c}": True} for c in dict.fromkeys(ids)]
            clauses.append(flags[0] if len(flags) == 1 else {"$or": flags})
        if organ:
            key = organ.strip().lower()
            if key not in known_organs:
                raise ValueError(f"unknown organ {organ!r}; known: {', '.join(known_organs)}")
            clauses.append({f"organ_{key}": True})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def search(self, query: str, k: int = 5, classes: list[str] | None = None,
               organ: str | None = None) -> list[dict]:
        """The ``k`` passages nearest to ``query`` (cosine), optionally filtered by class and organ."""
        if not query or not query.strip():
            raise ValueError("empty query")
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        where = self._where(classes, organ)
        embedding = embed([query.strip()])
        res = self._read(lambda col: col.query(query_embeddings=embedding, where=where, n_results=max(CANDIDATES, k),
                                               include=["documents", "metadatas", "distances"]))
        hits = [
            {
                "id": cid,
                "document": meta["document"],
                "title": meta["title"],
                "section": meta["section"],
                "source": meta["source"],
                "text": text,
                "classes": _split(meta.get("classes")),
                "organs": _split(meta.get("organs")),
                "score": 1.0 - float(dist),
            }
            for cid, text, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                             res["distances"][0])
        ]
        for hit, bonus in zip(hits, keyword_scores(query, hits)):
            hit["score"] = round(hit["score"] + KEYWORD_WEIGHT * bonus, 4)
        return sorted(hits, key=lambda h: -h["score"])[:k]

    def stats(self) -> dict:
        """Documents, chunks, per-organ and per-class document counts, location and embedding model."""
        docs: dict[str, dict] = {}
        for meta in self._read(lambda col: col.get(include=["metadatas"]))["metadatas"]:
            entry = docs.setdefault(meta["document"], {**meta, "chunks": 0})
            entry["chunks"] += 1
        organs: Counter[str] = Counter(o for d in docs.values() for o in _split(d.get("organs")))
        classes: Counter[str] = Counter(c for d in docs.values() for c in _split(d.get("classes")))
        return {
            "index_dir": str(self.index_dir),
            "store": self.location,
            "embedding_model": MODEL_NAME,
            "documents": len(docs),
            "chunks": sum(d["chunks"] for d in docs.values()),
            "user_documents": sorted(s for s, d in docs.items() if d.get("user")),
            "per_organ": dict(sorted(organs.items())),
            "per_class": dict(sorted(classes.items())),
            "by_document": {s: {"title": d["title"], "source": d["source"], "chunks": d["chunks"]}
                            for s, d in sorted(docs.items())},
        }


def _metadata(doc: Document, chunk: Any) -> dict:
    meta: dict[str, Any] = {
        "document": doc.slug,
        "doc_sha": doc.sha,
        "title": chunk.title,
        "section": chunk.section,
        "source": chunk.source,
        "url": doc.url,
        "user": doc.user,
        "classes": ",".join(doc.classes),
        "organs": ",".join(doc.organs),
    }
    meta.update({f"class_{c}": True for c in doc.classes})
    meta.update({f"organ_{o}": True for o in doc.organs})
    return meta


def _terms(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOPWORDS}


def keyword_scores(query: str, hits: list[dict]) -> list[float]:
    """Share (0..1, idf-weighted over ``hits``) of query terms found in each hit's headings or text.

    Small embedding models blur short exact terms ("4B", "grade II", "TG18"); this bonus lets a
    passage whose heading names them win among semantically close candidates.
    """
    query_terms = _terms(query)
    heads = [_terms(f"{h['title']} {h['section']}") for h in hits]
    bodies = [_terms(h["text"]) for h in hits]
    idf = {t: math.log(1 + len(hits) / (1 + sum(t in b or t in hd for hd, b in zip(heads, bodies))))
           for t in query_terms}
    total = sum(idf.values()) or 1.0
    return [sum(w * (1.0 if t in hd else 0.5 if t in b else 0.0) for t, w in idf.items()) / total
            for hd, b in zip(heads, bodies)]


def _split(value: Any) -> list[str]:
    return [v for v in str(value or "").split(",") if v]


_INDEXES: dict[tuple[str, str | None, int], GuidelineIndex] = {}
_INDEXES_LOCK = threading.Lock()


def get_index(index_dir: str | Path | None = None) -> GuidelineIndex:
    """One :class:`GuidelineIndex` per index directory (and server) per process."""
    index = GuidelineIndex(index_dir)
    key = (str(index.index_dir.resolve()), index.host, index.port)
    with _INDEXES_LOCK:
        return _INDEXES.setdefault(key, index)
