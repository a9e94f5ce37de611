"""Reporting: a study's speedup breakdown built from a snapshot of its storage (build.py, pure), the story's
claims answered (story.py), and only-drawing renderers: Markdown/HTML/JSON documents, matplotlib charts, the
terminal (Rich).

May import: everything but the CLI.
"""
