"""The example project behind ``mltest demo`` and its scripted history (the driver is ``mltest.cli.demo_cmd``)."""

from mltest.demo.script import MAX_COMMITS, MIN_COMMITS, Edit, ScriptedCommit, apply, copy_project, history

__all__ = ["MAX_COMMITS", "MIN_COMMITS", "Edit", "ScriptedCommit", "apply", "copy_project", "history"]
