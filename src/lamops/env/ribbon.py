"""The Word-like ribbon: every control, where it lives, what a click opens or does, and which are visible.

Controls are data. A click either opens a menu or dialog (`opens`) or runs a command (`command`, `arg`) that
the environment implements. Visibility follows a real UI: the quick-access bar and tab strip are always
there, then the active tab's controls (contextual table tabs only while a table is selected), then an open
drop-down menu; a modal dialog hides everything else. Enumeration order is layout order, so the same
control in the same UI state always gets the same label, as UI Automation enumerates a window."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Control:
    id: str
    text: str
    type: (
        str  # UI Automation control type: Button, TabItem, MenuItem, ListItem, Edit, ComboBox, CheckBox, Text
    )
    container: str  # "quick", "tabs", "tab:<Tab>", "gallery:<id>", "menu:<id>", "dialog:<id>"
    opens: str | None = None  # "menu:<id>" or "dialog:<id>"
    command: str | None = None
    arg: str | None = None


TABS = ("Home", "Insert", "Layout", "References", "Review", "View")
TABLE_TABS = ("Table Design", "Table Layout")
GALLERY_WINDOW = 5  # gallery items shown at once; wheel_mouse_input scrolls the rest into view

FONT_NAMES = (
    "Arial",
    "Calibri",
    "Cambria",
    "Courier New",
    "Garamond",
    "Georgia",
    "Times New Roman",
    "Verdana",
)
FONT_SIZES = ("8", "9", "10", "11", "12", "14", "16", "18", "20", "24", "28", "36", "48", "72")
HIGHLIGHTS = {
    "Yellow": "YELLOW",
    "Bright Green": "BRIGHT_GREEN",
    "Turquoise": "TURQUOISE",
    "Pink": "PINK",
    "Blue": "BLUE",
    "Red": "RED",
    "Gray-25%": "GRAY_25",
    "No Color": None,
}
FONT_COLORS = {
    "Automatic": None,
    "Black": "000000",
    "Dark Red": "C00000",
    "Red": "FF0000",
    "Orange": "FFC000",
    "Green": "00B050",
    "Blue": "0070C0",
    "Dark Blue": "002060",
    "Purple": "7030A0",
}
# Font dialog check boxes and the python-docx font property each sets.
FONT_EFFECTS = {
    "Strikethrough": "strike",
    "Superscript": "superscript",
    "Subscript": "subscript",
    "Small caps": "small_caps",
    "All caps": "all_caps",
}
CASES = ("Sentence case.", "lowercase", "UPPERCASE", "Capitalize Each Word", "tOGGLE cASE")
STYLE_GALLERY = (
    "Normal",
    "No Spacing",
    "Heading 1",
    "Heading 2",
    "Title",
    "Subtitle",
    "Heading 3",
    "Quote",
    "Intense Quote",
    "List Paragraph",
    "Caption",
)
TABLE_STYLES = (
    "Table Grid",
    "Light Shading",
    "Light Shading Accent 1",
    "Light List Accent 1",
    "Light Grid Accent 1",
    "Medium Shading 1 Accent 1",
    "Medium Grid 1 Accent 1",
    "Colorful List Accent 1",
)
LINE_SPACINGS = ("1.0", "1.15", "1.5", "2.0", "2.5", "3.0")
# Margins presets in inches: top, bottom, left, right (Word's values).
MARGINS = {
    "Normal": (1.0, 1.0, 1.0, 1.0),
    "Narrow": (0.5, 0.5, 0.5, 0.5),
    "Moderate": (1.0, 1.0, 0.75, 0.75),
    "Wide": (1.0, 1.0, 2.0, 2.0),
}
PAGE_SIZE_NAMES = ("Letter", "Legal", "A4", "A5")
SYMBOLS = ("©", "®", "™", "€", "£", "°", "±", "§")


def _c(container: str, text: str, type_: str = "Button", **kw) -> Control:
    slug = text.lower().replace(" ", "_").replace(".", "").replace("&", "and")
    return Control(id=f"{container}/{slug}", text=text, type=type_, container=container, **kw)


def _menu(menu: str, items, command: str, type_: str = "MenuItem", args=None) -> list[Control]:
    args = args or items
    return [_c(f"menu:{menu}", t, type_, command=command, arg=a) for t, a in zip(items, args, strict=True)]


def _dialog(dialog: str, edits=(), checks=(), buttons=(("OK", "ok"), ("Cancel", "cancel"))) -> list[Control]:
    c = f"dialog:{dialog}"
    return (
        [_c(c, e, "Edit") for e in edits]  # an Edit's value is set with set_edit_text, not a command
        + [_c(c, k, "CheckBox", command="check", arg=k) for k in checks]
        + [_c(c, text, "Button", command=cmd) for text, cmd in buttons]
    )


def _build() -> list[Control]:
    h, ins, lay, ref, rev, view = (f"tab:{t}" for t in TABS)
    td, tl = (f"tab:{t}" for t in TABLE_TABS)
    controls = [
        _c("quick", "Save", command="save"),
        _c("quick", "Undo", command="undo"),
        _c("quick", "Redo", command="redo"),
        *[_c("tabs", t, "TabItem", command="tab", arg=t) for t in TABS],
        *[_c("tabs", t, "TabItem", command="tab", arg=t) for t in TABLE_TABS],
        # Home
        _c(h, "Paste", command="paste"),
        _c(h, "Cut", command="cut"),
        _c(h, "Copy", command="copy"),
        _c(h, "Font", "ComboBox", opens="menu:font_name", command="font_name"),
        _c(h, "Font Size", "ComboBox", opens="menu:font_size", command="font_size"),
        _c(h, "Increase Font Size", command="grow_font", arg="2"),
        _c(h, "Decrease Font Size", command="grow_font", arg="-2"),
        _c(h, "Change Case", opens="menu:change_case"),
        _c(h, "Clear All Formatting", command="clear_formatting"),
        _c(h, "Bold", command="toggle", arg="bold"),
        _c(h, "Italic", command="toggle", arg="italic"),
        _c(h, "Underline", command="toggle", arg="underline"),
        _c(h, "Strikethrough", command="toggle", arg="strike"),
        _c(h, "Subscript", command="toggle", arg="subscript"),
        _c(h, "Superscript", command="toggle", arg="superscript"),
        _c(h, "Text Highlight Color", opens="menu:highlight"),
        _c(h, "Font Color", opens="menu:font_color"),
        _c(h, "Font Settings", opens="dialog:font"),
        _c(h, "Bullets", command="list_style", arg="List Bullet"),
        _c(h, "Numbering", command="list_style", arg="List Number"),
        _c(h, "Decrease Indent", command="indent", arg="-0.5"),
        _c(h, "Increase Indent", command="indent", arg="0.5"),
        _c(h, "Show/Hide Paragraph Marks", "CheckBox", command="view_toggle", arg="paragraph marks"),
        _c(h, "Align Left", command="align", arg="left"),
        _c(h, "Center", command="align", arg="center"),
        _c(h, "Align Right", command="align", arg="right"),
        _c(h, "Justify", command="align", arg="justify"),
        _c(h, "Line and Paragraph Spacing", opens="menu:line_spacing"),
        _c(h, "Paragraph Settings", opens="dialog:paragraph"),
        *[_c("gallery:styles", s, "ListItem", command="style", arg=s) for s in STYLE_GALLERY],
        _c(h, "More Styles", opens="menu:styles_all"),
        _c(h, "Find", "CheckBox", command="view_toggle", arg="navigation pane"),
        _c(h, "Replace", opens="dialog:find_replace"),
        _c(h, "Select", opens="menu:select"),
        # Insert
        _c(ins, "Blank Page", command="blank_page"),
        _c(ins, "Page Break", command="page_break"),
        _c(ins, "Table", opens="menu:table"),
        _c(ins, "Link", opens="dialog:hyperlink"),
        _c(ins, "Comment", opens="dialog:comment"),
        _c(ins, "Header", opens="menu:header"),
        _c(ins, "Footer", opens="menu:footer"),
        _c(ins, "Page Number", opens="menu:page_number"),
        _c(ins, "Symbol", opens="menu:symbol"),
        # Layout
        _c(lay, "Margins", opens="menu:margins"),
        _c(lay, "Orientation", opens="menu:orientation"),
        _c(lay, "Size", opens="menu:size"),
        _c(lay, "Columns", opens="menu:columns"),
        _c(lay, "Breaks", opens="menu:breaks"),
        _c(lay, "Line Numbers", opens="menu:line_numbers"),
        _c(lay, "Indent Left", "Edit", command="layout_field", arg="indent_left"),
        _c(lay, "Indent Right", "Edit", command="layout_field", arg="indent_right"),
        _c(lay, "Spacing Before", "Edit", command="layout_field", arg="space_before"),
        _c(lay, "Spacing After", "Edit", command="layout_field", arg="space_after"),
        # References
        _c(ref, "Table of Contents", opens="menu:toc"),
        _c(ref, "Update Table", command="update_fields"),
        _c(ref, "Insert Caption", opens="dialog:caption"),
        # Review
        _c(rev, "Word Count", opens="dialog:word_count"),
        _c(rev, "New Comment", opens="dialog:comment"),
        _c(rev, "Delete Comment", opens="menu:delete_comment"),
        _c(rev, "Previous Comment", command="goto_comment", arg="-1"),
        _c(rev, "Next Comment", command="goto_comment", arg="1"),
        _c(rev, "Show Comments", "CheckBox", command="view_toggle", arg="comments pane"),
        _c(rev, "Track Changes", "CheckBox", command="track_changes"),
        # View
        *[
            _c(view, m, command="view_mode", arg=m)
            for m in ("Read Mode", "Print Layout", "Web Layout", "Outline")
        ],
        _c(view, "Ruler", "CheckBox", command="view_toggle", arg="ruler"),
        _c(view, "Gridlines", "CheckBox", command="view_toggle", arg="gridlines"),
        _c(view, "Navigation Pane", "CheckBox", command="view_toggle", arg="navigation pane"),
        _c(view, "Zoom", opens="dialog:zoom"),
        _c(view, "100%", command="zoom", arg="100"),
        _c(view, "One Page", command="zoom", arg="60"),
        _c(view, "Page Width", command="zoom", arg="120"),
        # Table Design (contextual)
        _c(td, "Header Row", "CheckBox", command="table_look", arg="firstRow"),
        _c(td, "Total Row", "CheckBox", command="table_look", arg="lastRow"),
        _c(td, "Banded Rows", "CheckBox", command="table_look", arg="noHBand"),
        _c(td, "First Column", "CheckBox", command="table_look", arg="firstColumn"),
        *[_c("gallery:table_styles", s, "ListItem", command="table_style", arg=s) for s in TABLE_STYLES],
        # Table Layout (contextual)
        _c(tl, "Insert Above", command="table_insert", arg="above"),
        _c(tl, "Insert Below", command="table_insert", arg="below"),
        _c(tl, "Insert Left", command="table_insert", arg="left"),
        _c(tl, "Insert Right", command="table_insert", arg="right"),
        _c(tl, "Delete", opens="menu:table_delete"),
        _c(tl, "AutoFit", opens="menu:autofit"),
        # Menus
        *_menu("font_name", FONT_NAMES, "font_name", "ListItem"),
        *_menu("font_size", FONT_SIZES, "font_size", "ListItem"),
        *_menu("change_case", CASES, "change_case"),
        *_menu("highlight", list(HIGHLIGHTS), "highlight"),
        *_menu("font_color", list(FONT_COLORS), "font_color"),
        *_menu("line_spacing", LINE_SPACINGS, "line_spacing"),
        _c("menu:line_spacing", "Line Spacing Options...", "MenuItem", opens="dialog:paragraph"),
        _c(
            "menu:line_spacing",
            "Add Space Before Paragraph",
            "MenuItem",
            command="space_preset",
            arg="before",
        ),
        _c(
            "menu:line_spacing",
            "Remove Space After Paragraph",
            "MenuItem",
            command="space_preset",
            arg="after",
        ),
        *_menu("styles_all", STYLE_GALLERY, "style"),
        _c("menu:select", "Select All", "MenuItem", command="select_all"),
        _c("menu:table", "Insert Table...", "MenuItem", opens="dialog:insert_table"),
        _c("menu:header", "Blank", "MenuItem", opens="dialog:header"),
        _c("menu:header", "Edit Header", "MenuItem", opens="dialog:header"),
        _c("menu:header", "Remove Header", "MenuItem", command="remove_hf", arg="header"),
        _c("menu:footer", "Blank", "MenuItem", opens="dialog:footer"),
        _c("menu:footer", "Edit Footer", "MenuItem", opens="dialog:footer"),
        _c("menu:footer", "Remove Footer", "MenuItem", command="remove_hf", arg="footer"),
        *_menu(
            "page_number",
            ("Top of Page", "Bottom of Page", "Remove Page Numbers"),
            "page_number",
            args=("header", "footer", "remove"),
        ),
        *_menu("symbol", SYMBOLS, "type_symbol", "ListItem"),
        *_menu("margins", list(MARGINS), "margins"),
        _c("menu:margins", "Custom Margins...", "MenuItem", opens="dialog:page_setup"),
        *_menu("orientation", ("Portrait", "Landscape"), "orientation"),
        *_menu("size", PAGE_SIZE_NAMES, "page_size"),
        *_menu("columns", ("One", "Two", "Three"), "columns", args=("1", "2", "3")),
        *_menu("breaks", ("Page", "Column"), "break"),
        *_menu("line_numbers", ("None", "Continuous", "Restart Each Page"), "line_numbers"),
        *_menu("toc", ("Automatic Table", "Remove Table of Contents"), "toc", args=("add", "remove")),
        *_menu(
            "delete_comment",
            ("Delete", "Delete All Comments in Document"),
            "delete_comment",
            args=("current", "all"),
        ),
        *_menu(
            "table_delete",
            ("Delete Table", "Delete Rows", "Delete Columns"),
            "table_delete",
            args=("table", "last_row", "last_column"),
        ),
        *_menu(
            "autofit",
            ("AutoFit Contents", "AutoFit Window", "Fixed Column Width"),
            "autofit",
            args=("contents", "window", "fixed"),
        ),
        # Dialogs
        *_dialog("font", ("Font", "Size"), tuple(FONT_EFFECTS)),
        *_dialog(
            "paragraph",
            ("Indentation Left", "Indentation Right", "Spacing Before", "Spacing After", "Line Spacing"),
        ),
        *_dialog("insert_table", ("Number of columns", "Number of rows")),
        *_dialog(
            "find_replace",
            ("Find what", "Replace with"),
            ("Match case", "Find whole words only"),
            (
                ("Replace", "replace_one"),
                ("Replace All", "replace_all"),
                ("Find Next", "find_next"),
                ("Close", "cancel"),
            ),
        ),
        *_dialog("hyperlink", ("Text to display", "Address")),
        *_dialog("comment", ("Comment",), buttons=(("Post", "ok"), ("Cancel", "cancel"))),
        *_dialog("header", ("Header Text",), buttons=(("Close Header and Footer", "ok"),)),
        *_dialog("footer", ("Footer Text",), buttons=(("Close Header and Footer", "ok"),)),
        *_dialog("page_setup", ("Top", "Bottom", "Left", "Right")),
        *_dialog("zoom", ("Percent",)),
        *_dialog("caption", ("Caption",)),
        *_dialog("word_count", buttons=(("Close", "cancel"),)),
    ]
    ids = [c.id for c in controls]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate control ids: {dupes}"
    return controls


CONTROLS: tuple[Control, ...] = tuple(_build())
BY_CONTAINER: dict[str, tuple[Control, ...]] = {}
for _ctl in CONTROLS:
    BY_CONTAINER[_ctl.container] = BY_CONTAINER.get(_ctl.container, ()) + (_ctl,)
DIALOG_TITLES = {
    "font": "Font",
    "paragraph": "Paragraph",
    "insert_table": "Insert Table",
    "find_replace": "Find and Replace",
    "hyperlink": "Insert Hyperlink",
    "comment": "New Comment",
    "header": "Header",
    "footer": "Footer",
    "page_setup": "Page Setup",
    "zoom": "Zoom",
    "caption": "Caption",
    "word_count": "Word Count",
}
# Galleries sit inside a tab's layout right after the control named here.
GALLERY_AFTER = {
    "gallery:styles": "tab:Home/paragraph_settings",
    "gallery:table_styles": "tab:Table Design/first_column",
}


@dataclass
class UIState:
    active_tab: str = "Home"
    menu: str | None = None  # "menu:<id>"
    dialog: str | None = None  # "dialog:<id>"
    fields: dict[str, str] = field(default_factory=dict)  # the open dialog's Edit and CheckBox values
    gallery_offset: dict[str, int] = field(default_factory=dict)
    view: dict[str, str] = field(default_factory=lambda: {"mode": "Print Layout", "zoom": "100"})
    toggles: set[str] = field(default_factory=lambda: {"ruler"})

    def describe(self) -> str:
        parts = [f"tab {self.active_tab}"]
        if self.menu:
            parts.append(f"menu {self.menu.split(':', 1)[1]} open")
        if self.dialog:
            title = DIALOG_TITLES[self.dialog.split(":", 1)[1]]
            values = ", ".join(f"{k}={v}" for k, v in self.fields.items())
            parts.append(f"dialog {title} open" + (f" ({values})" if values else ""))
        return "; ".join(parts)


def visible_controls(ui: UIState, table_selected: bool, extra: tuple[Control, ...] = ()) -> list[Control]:
    """Visible controls in layout order. `extra` are dynamic controls of the open dialog (e.g. counts)."""
    if ui.dialog:
        return [*extra, *BY_CONTAINER[ui.dialog]]
    out = list(BY_CONTAINER["quick"])
    out += [c for c in BY_CONTAINER["tabs"] if c.arg in TABS or table_selected]
    for c in BY_CONTAINER.get(f"tab:{ui.active_tab}", ()):
        out.append(c)
        for gallery, after in GALLERY_AFTER.items():
            if c.id == after:
                items = BY_CONTAINER[gallery]
                start = ui.gallery_offset.get(gallery, 0)
                out += items[start : start + GALLERY_WINDOW]
    if ui.menu:
        out += BY_CONTAINER[ui.menu]
    return out
