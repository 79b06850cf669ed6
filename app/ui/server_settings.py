"""Settings ▸ Model server: the model runs on this computer (the default) or on a server the user
names (any OpenAI-compatible endpoint with Gemma 4: llama-server, vLLM, LiteRT-LM, another
Minutely's ``serve``).

``ServerPage`` is a page of ``SettingsDialog``: ``load(settings)``, ``values()``, ``problems()``.
"Test the server" asks the server for its models on the runner's pool and says in one line what
came back; nothing else here opens a socket.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QWidget,
)

from app.engine.errors import EngineError
from app.engine.remote import check_url

from .widgets import button, message_label

# settings fields of this page; a change reloads the model
SERVER_KEYS = ("model_server", "model_server_model", "model_server_token", "model_server_audio")


class ServerPage(QWidget):
    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        form = QFormLayout(self)
        self.local_radio = QRadioButton("On this &computer (private: nothing leaves it)")
        self.local_radio.setAccessibleName("Run the model on this computer")
        self.remote_radio = QRadioButton("On a &server I name")
        self.remote_radio.setAccessibleName("Run the model on a server")
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.remote_radio)
        form.addRow("The model runs:", self.local_radio)
        form.addRow("", self.remote_radio)
        self.url_edit = QLineEdit()
        self.url_edit.setAccessibleName("Server address")
        self.url_edit.setPlaceholderText("http://gpu-box:8080")
        form.addRow("Server &address:", self.url_edit)
        self.model_edit = QLineEdit()
        self.model_edit.setAccessibleName("Model name on the server")
        self.model_edit.setPlaceholderText("the server's first model")
        form.addRow("Model &name:", self.model_edit)
        self.token_edit = QLineEdit()
        self.token_edit.setAccessibleName("Access token")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("if the server asks for one")
        form.addRow("Access &token:", self.token_edit)
        self.audio_check = QCheckBox("The server takes &audio (transcription and dictation)")
        self.audio_check.setAccessibleName("The server takes audio")
        form.addRow("", self.audio_check)
        row = QHBoxLayout()
        self.test_button = button("T&est the server", "Ask the server which models it has", self.test)
        self.result = message_label("Server test result")
        row.addWidget(self.test_button)
        row.addWidget(self.result, 1)
        form.addRow("", row)
        note = QLabel("Transcription, summaries and questions go to the server: the meeting's audio "
                      "and screenshots are sent there. Recordings and the library stay here.")
        note.setWordWrap(True)
        form.addRow("", note)
        self.local_radio.toggled.connect(self._enable)

    def load(self, s) -> None:
        remote = bool(s.model_server)
        (self.remote_radio if remote else self.local_radio).setChecked(True)
        self.url_edit.setText(s.model_server)
        self.model_edit.setText(s.model_server_model)
        self.token_edit.setText(s.model_server_token)
        self.audio_check.setChecked(s.model_server_audio)
        self._enable()

    def values(self) -> dict:
        remote = self.remote_radio.isChecked()
        return {"model_server": self.url_edit.text().strip() if remote else "",
                "model_server_model": self.model_edit.text().strip(),
                "model_server_token": self.token_edit.text().strip(),
                "model_server_audio": self.audio_check.isChecked()}

    def problems(self) -> list[str]:
        if not self.remote_radio.isChecked():
            return []
        if not self.url_edit.text().strip():
            return ["Give the server's address, or choose “On this computer”."]
        try:
            check_url(self.url_edit.text())
        except EngineError as e:
            return [f"The server address is not usable: {e}."]
        return []

    def test(self):
        """Ask the server for its models (on the pool); the answer shows beside the button."""
        problems = self.problems() or ([] if self.remote_radio.isChecked()
                                       else ["Choose “On a server I name” first."])
        if problems:
            self._show(problems[0])
            return None
        from app.engine.remote import RemoteEngine

        v = self.values()
        engine = RemoteEngine(v["model_server"], v["model_server_model"], v["model_server_token"], timeout=15)
        self.test_button.setEnabled(False)
        self._show("Asking the server…")
        def check(_ctx) -> list[str]:
            try:
                return engine.check()
            finally:
                engine.close()

        return self.services.runner.run("Testing the model server", check,
                                        kind="server-test", on_done=self._tested, on_failed=self._failed)

    def _tested(self, models: list[str]) -> None:
        self.test_button.setEnabled(True)
        wanted = self.model_edit.text().strip()
        if wanted and wanted not in models:
            self._show(f"The server answers, but has no model “{wanted}”: it has {', '.join(models) or 'none'}.")
        else:
            self._show(f"The server answers. Models: {', '.join(models) or 'none'}.")

    def _failed(self, message: str) -> None:
        self.test_button.setEnabled(True)
        self._show(message)

    def _show(self, text: str) -> None:
        self.result.setText(text)
        self.result.setVisible(bool(text))

    def _enable(self) -> None:
        on = self.remote_radio.isChecked()
        for w in (self.url_edit, self.model_edit, self.token_edit, self.audio_check):
            w.setEnabled(on)
