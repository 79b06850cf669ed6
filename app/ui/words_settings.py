"""Settings ▸ Words and notes: the team's words (glossary, replacement rules), the calendar
folder and the notes folder.

``WordsPage`` is a page of ``SettingsDialog``: ``load(settings)`` fills it, ``values()`` gives its
settings fields, ``problems()`` the plain sentences for what cannot be saved. Replacement rules are
one ``wrong -> right`` per line; ``parse_rules`` reads them.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from .widgets import button

ARROW = "->"


def parse_rules(text: str) -> tuple[dict[str, str], list[str]]:
    """``wrong -> right`` lines as a dict, and a sentence for each line that is not a rule."""
    rules: dict[str, str] = {}
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        wrong, sep, right = line.partition(ARROW)
        wrong, right = " ".join(wrong.split()), " ".join(right.split())
        if not sep or not wrong or not right:
            problems.append(f"Replacement line {n} “{line.strip()}” is not a rule: write it as “wrong -> right”.")
            continue
        rules[wrong] = right
    return rules, problems


def rules_text(rules: dict[str, str]) -> str:
    return "\n".join(f"{k} {ARROW} {v}" for k, v in rules.items())


class WordsPage(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        self.glossary_edit = QPlainTextEdit()
        self.glossary_edit.setAccessibleName("Glossary")
        self.glossary_edit.setPlaceholderText("One name, product or acronym per line")
        self.glossary_edit.setTabChangesFocus(True)
        self.glossary_edit.setToolTip("Spelling hints for the transcription and the summary")
        form.addRow("&Glossary:", self.glossary_edit)
        self.rules_edit = QPlainTextEdit()
        self.rules_edit.setAccessibleName("Replacement rules")
        self.rules_edit.setPlaceholderText("One rule per line, e.g. Mini Lee -> Minutely")
        self.rules_edit.setTabChangesFocus(True)
        self.rules_edit.setToolTip("Whole words, any case, replaced in every new transcript")
        form.addRow("&Replacements:", self.rules_edit)
        self.calendar_edit, row = self._folder_row("Calendar folder", "A folder of .ics files",
                                                   "Choose the calendar folder")
        form.addRow("&Calendar folder:", row)
        self.notes_edit, row = self._folder_row("Notes folder", "Where notes are exported (an Obsidian vault)",
                                                "Choose the notes folder")
        form.addRow("&Notes folder:", row)
        self.auto_export_check = QCheckBox("E&xport a note when a summary finishes")
        self.auto_export_check.setAccessibleName("Export a note when a summary finishes")
        form.addRow("", self.auto_export_check)

    def _folder_row(self, name: str, placeholder: str, title: str) -> tuple[QLineEdit, QHBoxLayout]:
        edit = QLineEdit()
        edit.setAccessibleName(name)
        edit.setPlaceholderText(placeholder)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        browse = button("Browse…", f"Browse for the {name.lower()}", lambda: self._browse(edit, title))
        row.addWidget(browse)
        return edit, row

    def _browse(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text())
        if folder:
            edit.setText(folder)

    def load(self, s) -> None:
        self.glossary_edit.setPlainText("\n".join(s.glossary))
        self.rules_edit.setPlainText(rules_text(s.replacements))
        self.calendar_edit.setText(s.calendar_folder)
        self.notes_edit.setText(s.notes_folder)
        self.auto_export_check.setChecked(s.notes_auto_export)

    def values(self) -> dict:
        glossary: list[str] = []
        for line in self.glossary_edit.toPlainText().splitlines():
            term = " ".join(line.split())
            if term and term not in glossary:
                glossary.append(term)
        rules, _ = parse_rules(self.rules_edit.toPlainText())
        return {"glossary": glossary, "replacements": rules,
                "calendar_folder": self.calendar_edit.text().strip(),
                "notes_folder": self.notes_edit.text().strip(),
                "notes_auto_export": self.auto_export_check.isChecked()}

    def problems(self) -> list[str]:
        _, problems = parse_rules(self.rules_edit.toPlainText())
        return problems[:1]  # one line
