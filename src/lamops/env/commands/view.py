"""The View tab (and the view toggles on other tabs): what is shown, view mode, zoom."""

from __future__ import annotations


class ViewCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_view_toggle(self, what: str) -> str:
        self.ui.toggles ^= {what}
        return f"{what} {'shown' if what in self.ui.toggles else 'hidden'}"

    def cmd_view_mode(self, mode: str) -> str:
        self.ui.view["mode"] = mode
        return f"view: {mode}"

    def cmd_zoom(self, percent: str) -> str:
        self.ui.view["zoom"] = percent
        return f"zoom {percent}%"
