"""The guideline corpus (``guidelines/*.md``) and its Chroma index.

``knowledge.corpus`` parses and chunks documents, ``knowledge.embeddings`` provides the offline
all-MiniLM-L6-v2 embedding function, and ``knowledge.index`` keeps the Chroma collection in step
with the files (``get_index(index_dir).search(query, k, classes, organ)``).
"""
