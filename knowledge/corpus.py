"""The guideline corpus: Markdown documents with YAML front matter, chunked by section.

A document's front matter names ``title``, ``source`` (the guideline it summarises),
optional ``url``, ``organs``, ``classes`` and ``year``/``version``. Sections are ``##``
headings (``###`` sub-headings extend the heading path); long sections are split by
paragraphs. Chunk ids are stable for citation: ``<doc-slug>#<section-slug>[-n]``.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from models.classes import CLASSES, ORGANS
from models.errors import UserError

BUILTIN_DIR = Path(__file__).resolve().parent / "guidelines"
SUFFIXES = (".md", ".markdown", ".txt")
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_CHUNK_CHARS = 1200
CHUNKER_VERSION = "1"


class GuidelineError(UserError):
    """A guideline file that cannot be indexed (missing, empty, binary, huge, undecodable, malformed)."""


@dataclass
class Document:
    """One guideline document and its metadata."""

    slug: str
    path: Path
    title: str
    source: str
    body: str
    organs: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    url: str = ""
    year: str = ""
    user: bool = False
    sha: str = ""


@dataclass
class Chunk:
    """One searchable passage: a section (or part of one) of a document."""

    id: str
    document: str
    title: str
    section: str
    source: str
    text: str
    organs: list[str]
    classes: list[str]

    def embedding_text(self) -> str:
        """What gets embedded: title and heading path give the passage its context."""
        return f"{self.title}. {self.section}.\n{self.text}"


def slugify(text: str) -> str:
    """Lower-case ASCII slug ("Tokyo Guidelines 2018" -> "tokyo-guidelines-2018")."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a guideline file, or a GuidelineError saying why it cannot be used."""
    if not path.exists():
        raise GuidelineError(f"{path}: no such file")
    if not path.is_file():
        raise GuidelineError(f"{path}: not a regular file")
    if path.suffix.lower() not in SUFFIXES:
        raise GuidelineError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use Markdown (.md) or plain text (.txt)")
    size = path.stat().st_size
    if size == 0:
        raise GuidelineError(f"{path}: empty file")
    if size > MAX_FILE_BYTES:
        raise GuidelineError(f"{path}: file too large ({size / 2**20:.1f} MiB > {MAX_FILE_BYTES // 2**20} MiB)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GuidelineError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise GuidelineError(f"{path}: binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GuidelineError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise GuidelineError(f"{path}: empty file (only whitespace)")
    return text


def _split_front_matter(path: Path, text: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"---[ \t]*\n(.*?)\n---[ \t]*(?:\n|$)", text, re.S)
    if not match:
        raise GuidelineError(f"{path}: front matter starts with '---' but never ends")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise GuidelineError(f"{path}: invalid YAML front matter ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise GuidelineError(f"{path}: front matter must be a YAML mapping")
    return meta, text[match.end():]


def _str_list(path: Path, meta: dict, key: str, known: tuple[str, ...] | None) -> list[str]:
    value = meta.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GuidelineError(f"{path}: front matter {key!r} must be a list of names")
    items = [slugify(v).replace("-", "_") for v in value]
    if known is not None:
        bad = [v for v in items if v not in known]
        if bad:
            raise GuidelineError(f"{path}: unknown {key} {', '.join(bad)}; known: {', '.join(known)}")
    return items


def parse_document(path: Path, user: bool = False) -> Document:
    """Read and validate one guideline file; built-in documents must have complete front matter."""
    path = Path(path)
    text = read_text_file(path)
    markdown = path.suffix.lower() != ".txt"
    meta, body = _split_front_matter(path, text) if markdown else ({}, text)
    title = meta.get("title")
    if not title and markdown:
        heading = re.search(r"^#\s+(.+)$", body, re.M)
        title = heading.group(1).strip() if heading else None
    title = str(title or path.stem.replace("_", " ").replace("-", " ").strip().capitalize())
    source = str(meta.get("source") or "")
    if not source:
        if not user:
            raise GuidelineError(f"{path}: front matter must name the 'source' it summarises")
        source = f"user-provided: {path.name}"
    strict = None if user else tuple(CLASSES)
    doc = Document(
        slug=("user-" if user else "") + slugify(path.stem),
        path=path,
        title=title,
        source=source,
        body=body,
        organs=_str_list(path, meta, "organs", None if user else ORGANS),
        classes=_str_list(path, meta, "classes", strict),
        url=str(meta.get("url") or ""),
        year=str(meta.get("year") or meta.get("version") or ""),
        user=user,
        sha=hashlib.sha256(f"{CHUNKER_VERSION}\n{path.name}\n{text}".encode()).hexdigest()[:16],
    )
    if not chunk_document(doc):
        raise GuidelineError(f"{path}: no text to index")
    return doc


def _sections(doc: Document) -> list[tuple[str, str]]:
    """(heading path, text) pairs; ``##`` starts a section, ``###`` a sub-section."""
    if doc.path.suffix.lower() == ".txt":
        return [(doc.title, doc.body.strip())]
    out: list[tuple[str, str]] = []
    h2, h3, lines = "", "", []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            out.append((" > ".join(h for h in (h2 or "Overview", h3) if h), text))
        lines.clear()

    for line in doc.body.splitlines():
        match = re.match(r"^(#{1,3})\s+(.+?)\s*#*\s*$", line)
        if match:
            flush()
            level, heading = len(match.group(1)), match.group(2)
            if level == 1:
                h2, h3 = "", ""
            elif level == 2:
                h2, h3 = heading, ""
            else:
                h3 = heading
        else:
            lines.append(line)
    flush()
    return out


def _split_long(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Pack paragraphs (then sentences, for a huge paragraph) into parts of at most ``limit`` chars."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if len(para) <= limit:
            pieces.append(para)
            continue
        sentence_part = ""
        for sentence in re.split(r"(?<=[.;!?])\s+", para):
            while len(sentence) > limit:
                pieces.append(sentence[:limit])
                sentence = sentence[limit:]
            if sentence_part and len(sentence_part) + 1 + len(sentence) > limit:
                pieces.append(sentence_part)
                sentence_part = ""
            sentence_part = f"{sentence_part} {sentence}".strip()
        if sentence_part:
            pieces.append(sentence_part)
    parts: list[str] = []
    for piece in filter(None, pieces):
        if parts and len(parts[-1]) + 2 + len(piece) <= limit:
            parts[-1] += "\n\n" + piece
        else:
            parts.append(piece)
    return parts


def chunk_document(doc: Document) -> list[Chunk]:
    """The document's passages with stable, unique ids (a repeated heading gets ``-s2``, ``-s3``...)."""
    chunks: list[Chunk] = []
    used: Counter[str] = Counter()
    for section, text in _sections(doc):
        slug = slugify(section.split(" > ")[-1])
        used[slug] += 1
        base = f"{doc.slug}#{slug}" + (f"-s{used[slug]}" if used[slug] > 1 else "")
        for n, part in enumerate(_split_long(text), start=1):
            cid = base if n == 1 else f"{base}-{n}"
            chunks.append(Chunk(cid, doc.slug, doc.title, section, doc.source, part, doc.organs, doc.classes))
    return chunks


def load_corpus(builtin_dir: Path = BUILTIN_DIR, user_dir: Path | None = None) -> list[Document]:
    """All built-in documents, then the user's (if ``user_dir`` exists)."""
    docs = [parse_document(p) for p in sorted(builtin_dir.glob("*.md"))]
    if user_dir is not None and user_dir.is_dir():
        docs += [parse_document(p, user=True) for p in sorted(user_dir.iterdir()) if p.suffix.lower() in SUFFIXES]
    return docs
