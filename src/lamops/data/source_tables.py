"""The raw-corpus writer's phrase and noise tables, data only: how steps, queries, titles and intros are
written, the document objects and values tasks name, and the noise items (other languages, other apps,
non-tasks, tasks that depend on the environment). `lamops.data.sources` draws from them."""

from __future__ import annotations

# ---- how steps are written ---------------------------------------------------------------------------------
# Forms that name a control as collect recognises it; {c} control, {tab} its tab, {d} dialog/gallery title.
STEP_FORMS: dict[str, tuple[str, ...]] = {
    "tab": (
        "Open the **{c}** tab.",
        "Click the **{c}** tab.",
        "Go to the {c} tab.",
        "Switch to the {c} tab on the ribbon.",
        "Click the '{c}' tab at the top of the window.",
        'Select the "{c}" tab.',
    ),
    "open_menu": (
        "Click **{c}**.",
        "Click the {c} button.",
        "Open the **{c}** menu.",
        "Click the arrow next to **{c}**.",
        "On the **{tab}** tab, click **{c}**.",
        "Click '{c}'.",
        "In the {tab} tab, open the {c} menu.",
    ),
    "open_list": (
        "Click the **{c}** box.",
        "Open the {c} list.",
        "Click the arrow in the **{c}** box.",
        "On the **{tab}** tab, open the '{c}' list.",
    ),
    "menu_item": (
        "Choose **{c}**.",
        "Select **{c}** from the list.",
        "Click **{c}**.",
        "Pick '{c}'.",
        'Choose "{c}" from the menu.',
        "Click **{c}** in the drop-down.",
    ),
    "choice_list": (
        "Choose the {noun} you want, such as {opts}.",
        "Pick a {noun}: {opts}.",
        "Select one of the {noun} options ({opts}).",
    ),
    "gallery_item": (
        "Click the **{c}** style.",
        "Choose **{c}** in the {d} gallery.",
        "Click '{c}' in the styles list.",
        "Pick **{c}** from the {d} gallery.",
    ),
    "scroll": (
        "Scroll down in the {d} gallery.",
        "Use the arrows on the {d} gallery to see more styles.",
        "Scroll the {d} gallery until you find the style.",
    ),
    "open_dialog": (
        "Click **{c}** to open the {d} dialog.",
        "Click **{c}**.",
        "Click the {c} button.",
        "Click '{c}'; the {d} dialog opens.",
    ),
    "field": (
        "Type {v} in the **{c}** box.",
        "Enter {v} in the {c} box.",
        "In the '{c}' box, type {v}.",
        "Set **{c}** to {v}.",
        'Type {v} into the "{c}" field.',
    ),
    "check": (
        "Tick **{c}**.",
        "Check the {c} box.",
        "Select the **{c}** check box.",
        "Put a tick in '{c}'.",
    ),
    "uncheck": (
        "Clear the **{c}** check box.",
        "Untick '{c}'.",
        "Uncheck the **{c}** box.",
    ),
    "toggle": (
        "Click **{c}**.",
        "Turn on **{c}**.",
        "Click the {c} button to turn it on.",
    ),
    "dialog_button": (
        "Click **{c}**.",
        "Press **{c}**.",
        "Click the {c} button.",
        "Click '{c}' to finish.",
        "Hit **{c}** when you are done.",
    ),
    "button": (
        "Click **{c}**.",
        "Click the {c} button.",
        "On the **{tab}** tab, click **{c}**.",
        "Press the **{c}** button.",
        "Click '{c}' on the {tab} tab.",
        "Click **{c}** (it is on the {tab} tab).",
    ),
    "select_text": (
        "Select {o}.",
        "Highlight {o} with your mouse.",
        "Drag across {o} to select it.",
        "Click and drag to select {o}.",
        "First, select {o}.",
        "Select {o} that you want to change.",
    ),
    "select_paragraph": (
        "Click anywhere in {o}.",
        "Place the cursor in {o}.",
        "Select {o}.",
        "Click inside {o}.",
        "Put your cursor somewhere in {o}.",
    ),
    "select_paragraphs": (
        "Select {o}.",
        "Highlight {o}.",
        "Drag to select {o}.",
        "Drag over {o} to select them.",
    ),
    "select_table": (
        "Click anywhere in {o}.",
        "Click inside {o}.",
        "Select {o}.",
        "Put the cursor in any cell of {o}.",
    ),
    "type": ("Type {v}.", "Type the new text, for example {v}.", "Start typing: {v}."),
}
KEY_FORMS: dict[str, tuple[str, ...]] = {
    "^{END}": (
        "Press Ctrl+End to jump to the end of the document.",
        "Go to the end of the document (Ctrl+End).",
        "Click at the very end of the document.",
    ),
    "{ENTER}": ("Press Enter.", "Hit Enter to start a new line.", "Press Enter to add a new paragraph."),
    "{DELETE}": ("Press Delete.", "Press the Delete key.", "Hit Delete or Backspace."),
    "{RIGHT}": (
        "Press the Right Arrow key once.",
        "Press the right arrow to move the cursor after it.",
        "Click just after the last letter.",
    ),
}
# Other names, written the way a writer using them would.
OTHER_NAME_FORMS = ("Click **{n}**.", "Click the {n}.", "Click '{n}'.", "Choose {n}.", "Go to **{n}**.")
SHORTCUT_FORMS = ("Press {k}.", "Use {k}.", "Hit {k} on your keyboard.")
OLD_UI_FORMS = ("Go to {p}.", "Click {p}.", "Choose {p} from the menu bar.", "Open {p}.")
OLD_UI_CLOSE = ("Click **OK**.", "Click OK to close the dialog.", "Press **OK**.")
INTROS = (
    "Open your document in Word.",
    "Open the document you want to edit.",
    "Start Microsoft Word and open your file.",
    "Open the Word file you are working on.",
    "Make sure the document is open and you can edit it.",
    "Double-click the file to open it in Word.",
    "Open Word and load the document from your recent files.",
)
OUTROS = (
    "Click **Save** to keep the change.",
    "Save the document.",
    "Press Ctrl+S to save your work.",
    "Check the result and save the file.",
    "Look over the page to check the result.",
    "That is it: the change is made.",
)
# Where a control sits on the ribbon, as writers point at it.
RIBBON_GROUPS = {
    **dict.fromkeys(
        ("Font", "Font Size", "Bold", "Italic", "Underline", "Font Color", "Text Highlight Color"), "Font"
    ),
    **dict.fromkeys(("Change Case", "Clear All Formatting", "Font Settings"), "Font"),
    **dict.fromkeys(
        ("Bullets", "Numbering", "Increase Indent", "Center", "Align Right", "Justify", "Paragraph Settings"),
        "Paragraph",
    ),
    "Line and Paragraph Spacing": "Paragraph",
    "More Styles": "Styles",
    "Replace": "Editing",
    "Page Break": "Pages",
    "Table": "Tables",
    "Link": "Links",
    **dict.fromkeys(("Header", "Footer", "Page Number"), "Header & Footer"),
    "Symbol": "Symbols",
    **dict.fromkeys(("Margins", "Orientation", "Size", "Columns"), "Page Setup"),
    "Table of Contents": "Table of Contents",
    "Insert Caption": "Captions",
    **dict.fromkeys(("New Comment", "Delete Comment", "Next Comment"), "Comments"),
    "Track Changes": "Tracking",
    **dict.fromkeys(("Insert Above", "Insert Below", "Insert Left", "Insert Right"), "Rows & Columns"),
    "Delete": "Rows & Columns",
    "Header Row": "Table Style Options",
}
GROUP_FORMS = (
    " (in the {g} group).",
    " in the {g} group.",
    ", which is in the {g} group.",
    "; look in the {g} group.",
)
TIPS = (
    " This works the same in most recent versions of Word.",
    " You can undo it with Ctrl+Z.",
    " The change shows at once.",
    " Nothing else in the document changes.",
)
RAMBLE = (
    "Before you do anything else, it is a really good idea to save a backup copy of your document somewhere "
    "safe, because you never know what might happen while you are editing an important file and it is much "
    "better to be safe than sorry.",
    "Take a moment to look around the ribbon at the top of the window, since there are a lot of buttons and "
    "menus there and getting to know where things are will help you a lot in the future, not just today.",
    "If you are not sure which part of the document you want to change, scroll through it slowly from the "
    "top to the bottom and read it again, maybe even print it out and mark the places with a pen.",
    "Some people like to do this with the keyboard and some like to use the mouse, and honestly both are "
    "fine, so just go with whatever feels more comfortable for you and do not worry too much about it.",
    "Remember that Word sometimes looks a little different depending on the version you have and the size of "
    "your screen, so the buttons might be in a slightly different place or have a slightly different look.",
    "When you are done, read through the whole document one more time to make sure everything looks the way "
    "you expected, and ask a friend or a colleague to have a look if you want a second opinion.",
)
CONTEXTS = (
    "Use this when you want to {t}.",
    "This is useful when you need to {t}.",
    "You can do this in a few clicks.",
    "The steps below work in Word for Windows and Mac.",
    "Follow these steps.",
    "Here is how.",
)

# Concrete-but-generic things a task is about, by what the family selects.
OBJECTS = {
    "text": (
        "the title",
        "a heading",
        "a word",
        "a phrase",
        "the company name",
        "a sentence",
        "the date",
        "a name",
        "the key term",
        "the product name",
        "the first line",
        "the subtitle",
        "a few words",
        "the deadline",
        "a price",
        "the address",
        "an important note",
        "the warning",
        "your name",
        "the caption text",
        "the quote",
        "a book title",
    ),
    "paragraph": (
        "a paragraph",
        "the first paragraph",
        "the introduction",
        "the closing paragraph",
        "the second paragraph",
        "the summary",
        "the last paragraph",
        "the address block",
        "a long paragraph",
        "the conclusion",
        "the abstract",
        "a quotation",
        "the disclaimer",
    ),
    "paragraphs": (
        "a few paragraphs",
        "several lines",
        "the items",
        "three paragraphs",
        "the steps",
        "the list of names",
        "those lines",
        "the agenda items",
        "the list",
    ),
    "table": (
        "the table",
        "your table",
        "the sales table",
        "a table",
        "the schedule table",
        "the price table",
        "the first table",
        "the data table",
    ),
}
FIND_REPLACE = (
    ("colour", "color"),
    ("teh", "the"),
    ("Q1", "first quarter"),
    ("e-mail", "email"),
    ("centre", "center"),
    ("organise", "organize"),
    ("dept", "department"),
    ("approx", "approximately"),
    ("2023", "2024"),
    ("ASAP", "as soon as possible"),
)
MATCH_CASE_PAIRS = (
    ("Smith", "Jones"),
    ("Acme", "Globex"),
    ("Monday", "Tuesday"),
    ("March", "April"),
    ("London", "Paris"),
    ("Draft", "Final"),
)
VALUES = {
    "comment": (
        "Check this date.",
        "Is this correct?",
        "Needs a source.",
        "Reword this?",
        "Please confirm.",
        "Too long?",
        "Add an example here.",
        "Who approved this?",
    ),
    "header": (
        "Company Confidential",
        "Quarterly Report",
        "Project Plan",
        "Draft",
        "Your Name",
        "Meeting Minutes",
        "Annual Review",
        "For internal use",
    ),
    "footer": (
        "Page footer",
        "Internal use only",
        "Prepared by HR",
        "Confidential",
        "Copyright notice",
        "Printed copy",
        "Version 1.0",
        "Do not distribute",
    ),
    "caption": (
        "Sales by region",
        "Project timeline",
        "Price list",
        "Results",
        "Team members",
        "Budget summary",
        "Survey answers",
        "Opening hours",
    ),
    "typed": (
        "the new wording",
        "the correct name",
        "an updated date",
        "the final figure",
        "Thank you for reading.",
        "See you next week.",
        "All rights reserved.",
        "Questions? Call the office.",
    ),
    "link": ("https://www.example.com", "https://example.org/help", "https://www.example.net/about"),
}
# A query names a task's values with plain words, not quotes.
QUERY_SLOTS = {
    "objs": "paragraphs",
    "find": "a word",
    "repl": "another word",
    "comment": "a note",
    "header": "my header text",
    "footer": "my footer text",
    "caption": "a caption",
    "typed": "new wording",
    "link": "a website",
    "other": "a comment",
}
APP_NAMES = ("word", "ms word", "microsoft word", "word 2016", "word 365", "msword", "word doc", "word 2019")
QUERY_FRAMES = (
    "{q}",
    "how to {q}",
    "{app} {q}",
    "{q} {app}",
    "how to {q} in {app}",
    "{app} how to {q}",
    "how do i {q} in {app}",
    "{q} in {app}",
    "how to {q} {app}",
    "{app} {q} help",
    "can i {q} in {app}",
)
TITLE_FRAMES = (
    "How to {t} in Word",
    "How to {t} in Microsoft Word",
    "How to {t}",
    "How Do I {t} in Word?",
    "{T} in Word",
    "Word: how to {t}",
    "How to {t} in a Word Document",
    "How to {t} (Word 2016 and Later)",
    "Quick Way to {t} in Word",
    "How Can I {t} in Word?",
    "{T}: Step by Step",
    "Easy Steps to {t} in MS Word",
)
DOC_HEADING_FRAMES = ("{T}", "{T}", "{T}", "To {t}", "{T} in a document", "{T} (Word for Windows)")
SMALL_WORDS = frozenset("a an the and or of to in on for with at by from as but".split())


# ---- noise content -----------------------------------------------------------------------------------------
NON_ENGLISH: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "So formatieren Sie die Schrift in Word fett",
        (
            "Markieren Sie die Wörter, die Sie ändern möchten.",
            "Klicken Sie auf der Registerkarte **Start** auf **Fett**.",
            "Die Wörter werden jetzt mit einer fetten Schrift angezeigt.",
        ),
    ),
    (
        "So fügen Sie eine Tabelle in Word ein",
        (
            "Klicken Sie auf die Registerkarte **Einfügen**.",
            "Klicken Sie auf **Tabelle** und dann auf **Tabelle einfügen**.",
            "Geben Sie die Anzahl der Spalten und der Zeilen ein und klicken Sie auf **OK**.",
        ),
    ),
    (
        "Die Seitenränder in Word ändern",
        (
            "Öffnen Sie die Registerkarte **Layout**.",
            "Klicken Sie auf **Seitenränder**.",
            "Wählen Sie eine der Vorlagen aus, zum Beispiel **Schmal**.",
        ),
    ),
    (
        "Eine Kopfzeile in Word hinzufügen",
        (
            "Klicken Sie auf **Einfügen** und dann auf **Kopfzeile**.",
            "Wählen Sie **Kopfzeile bearbeiten** aus.",
            "Geben Sie den Text ein und schließen Sie die Kopf- und Fußzeile.",
        ),
    ),
    (
        "Den Zeilenabstand in Word einstellen",
        (
            "Markieren Sie den Absatz, den Sie ändern möchten.",
            "Klicken Sie auf **Zeilen- und Absatzabstand**.",
            "Wählen Sie den gewünschten Abstand aus, zum Beispiel **1,5**.",
        ),
    ),
    (
        "Cómo poner texto en negrita en Word",
        (
            "Selecciona el texto que quieres cambiar.",
            "En la pestaña **Inicio**, haz clic en **Negrita**.",
            "El texto se verá en negrita en todo el documento.",
        ),
    ),
    (
        "Cómo insertar una tabla en Word",
        (
            "Abre la pestaña **Insertar** de la cinta.",
            "Haz clic en **Tabla** y elige el número de filas y de columnas.",
            "Haz clic en **Aceptar** para crear la tabla.",
        ),
    ),
    (
        "Cómo cambiar la orientación de la página en Word",
        (
            "Ve a la pestaña **Disposición**.",
            "Haz clic en **Orientación**.",
            "Elige **Horizontal** para girar todas las páginas del documento.",
        ),
    ),
    (
        "Cómo cambiar el color de la fuente en Word",
        (
            "Selecciona el texto que quieres cambiar.",
            "Haz clic en la flecha de **Color de fuente**.",
            "Elige un color de la lista, por ejemplo **Rojo**.",
        ),
    ),
    (
        "Comment mettre du texte en gras dans Word",
        (
            "Sélectionnez le texte que vous voulez modifier.",
            "Dans l'onglet **Accueil**, cliquez sur **Gras**.",
            "Le texte est maintenant en gras dans le document.",
        ),
    ),
    (
        "Comment insérer un tableau dans Word",
        (
            "Cliquez sur l'onglet **Insertion**.",
            "Cliquez sur **Tableau** puis sur **Insérer un tableau**.",
            "Indiquez le nombre de colonnes et de lignes et cliquez sur **OK**.",
        ),
    ),
    (
        "Comment ajouter un en-tête dans Word",
        (
            "Cliquez sur l'onglet **Insertion** puis sur **En-tête**.",
            "Choisissez **Modifier l'en-tête** dans le menu.",
            "Tapez le texte de l'en-tête et cliquez sur **Fermer**.",
        ),
    ),
    (
        "Comment activer le suivi des modifications dans Word",
        (
            "Ouvrez l'onglet **Révision** du ruban.",
            "Cliquez sur **Suivi des modifications** pour l'activer.",
            "Les modifications sont maintenant affichées dans le document.",
        ),
    ),
    (
        "如何在 Word 中加粗文字",
        ("选择要更改的文字。", "在“开始”选项卡上，单击“加粗”。", "文字现在以粗体显示。"),
    ),
    (
        "如何在 Word 中插入表格",
        ("打开“插入”选项卡。", "单击“表格”，然后选择“插入表格”。", "输入列数和行数，然后单击“确定”。"),
    ),
    (
        "如何在 Word 中更改页面方向",
        ("打开“布局”选项卡。", "单击“纸张方向”。", "选择“横向”。"),
    ),
    (
        "如何在 Word 中添加页码",
        ("打开“插入”选项卡。", "单击“页码”。", "选择页码的位置，例如“页面底端”。"),
    ),
)
NON_ENGLISH_QUERIES = (
    "wie mache ich die schrift in word fett und größer",
    "word tabelle einfügen mit der maus",
    "die seitenränder für die arbeit ändern mit word",
    "die kopfzeile und die seitenzahl in word bearbeiten",
    "como poner negrita en word",
    "como insertar una tabla en word con el teclado",
    "cambiar el color de la letra en word",
    "numerar las paginas en word desde la segunda",
    "comment mettre en gras dans word",
    "comment changer les marges dans word pour une page",
    "insérer un tableau dans le document word",
    "word 怎么加粗",
    "word 如何插入表格",
    "word 页码 设置",
)
IRRELEVANT: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "How to Merge Cells in Excel",
        (
            "Select the cells you want to merge.",
            "On the **Home** tab, click **Merge & Center**.",
            "Choose **Merge Cells** from the list.",
        ),
    ),
    (
        "How to Freeze the Top Row in Excel",
        ("Open the **View** tab.", "Click **Freeze Panes**.", "Choose **Freeze Top Row**."),
    ),
    (
        "How to Bold Text in Google Docs on Android",
        (
            "Open the Google Docs app.",
            "Tap the document, then double-tap a word.",
            "Tap the **A** icon at the top.",
            "Tap **Bold**.",
        ),
    ),
    (
        "How to Make a Checklist in Notes on iPhone",
        ("Open the Notes app.", "Tap the compose icon.", "Tap the checklist button and type your items."),
    ),
    (
        "How to Add a Slide Transition in PowerPoint",
        ("Select the slide.", "Open the **Transitions** tab.", "Click the transition you want."),
    ),
    (
        "How to Change the Font Size on an Android Phone",
        ("Open **Settings**.", "Tap **Display**.", "Tap **Font size and style** and drag the slider."),
    ),
    (
        "How to Insert a Table in Google Docs",
        ("Click **Insert** in the menu bar.", "Point to **Table**.", "Drag to pick the number of rows."),
    ),
    (
        "How to Sort a Column in Google Sheets",
        ("Click the column letter.", "Open the **Data** menu.", "Choose **Sort sheet A to Z**."),
    ),
    (
        "How to Highlight Text on an iPad",
        ("Open the file in the Books app.", "Touch and hold a word.", "Tap **Highlight**."),
    ),
    (
        "How to Add Page Numbers in Apple Pages",
        ("Click in the header.", "Click **Insert** in the toolbar.", "Choose **Page Number**."),
    ),
    (
        "How to Use Word on an iPhone",
        (
            "Download the Word app from the App Store.",
            "Sign in with your Microsoft account.",
            "Tap **New** to create a document.",
        ),
    ),
    (
        "How to Change Your Wallpaper on an Android Phone",
        (
            "Long-press an empty spot on the home screen.",
            "Tap **Wallpapers**.",
            "Pick an image and tap **Set**.",
        ),
    ),
)
IRRELEVANT_QUERIES = (
    "excel merge cells",
    "how to freeze top row in excel",
    "google docs bold text on android",
    "iphone notes checklist",
    "powerpoint slide transition",
    "android phone font size bigger",
    "google sheets sort column",
    "pages app add page numbers on mac",
    "ipad highlight pdf text",
)
# About Word, but rejected by the filter stage: subjective, involving other apps, depending on the
# environment.
NON_TASK: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "How to Make Your Word Document Look Professional",
        (
            "Choose a clean font such as **Calibri** from the **Font** list.",
            "Use the **Heading 1** and **Heading 2** styles for your headings.",
            "Keep the margins even: open the **Layout** tab and click **Margins**.",
            "Leave enough white space so the page feels calm.",
        ),
    ),
    (
        "How to Make Your Resume Look Better in Word",
        (
            "Pick a simple font and a font size of **11** or **12**.",
            "Make your name bold with the **Bold** button.",
            "Use **Bullets** for your skills.",
            "Keep everything aligned with **Align Left**.",
        ),
    ),
    (
        "How to Make a Word Newsletter More Attractive",
        (
            "Split the text into columns on the **Layout** tab.",
            "Add a colourful title with the **Title** style.",
            "Use a **Font Color** that matches your logo.",
        ),
    ),
    (
        "How to Make Your Report Look Nicer in Word",
        (
            "Apply **Heading 1** to each chapter title.",
            "Insert a **Table of Contents** from the **References** tab.",
            "Add page numbers from the **Insert** tab.",
        ),
    ),
    (
        "How to Make a Long Word Document More Readable",
        (
            "Increase the line spacing with **Line and Paragraph Spacing**.",
            "Break the text into short paragraphs.",
            "Use **Bullets** for lists of points.",
        ),
    ),
)
NON_TASK_QUERIES = (
    "make word document look professional with headings",
    "make my resume look better in word bold font",
    "word document look nicer fonts",
    "make word report more attractive with a table of contents",
)
APP_INVOLVE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "How to Email This Word Document to Bob",
        (
            "Click the **File** tab and choose **Share**.",
            "Click **Email** and then **Send as Attachment**.",
            "Type Bob's e-mail address and click **Send**.",
        ),
    ),
    (
        "How to Insert an Excel Chart into a Word Document",
        (
            "Copy the chart in Excel.",
            "In Word, click where you want the chart.",
            "On the **Home** tab, click **Paste** and pick **Keep Source Formatting**.",
            "Add a caption under it with **Insert Caption** on the **References** tab.",
        ),
    ),
    (
        "How to Send a Word Document as an Outlook Attachment",
        (
            "Save your document.",
            "Open the **File** tab and click **Share**.",
            "Choose **Attach a copy instead** and click **Send**.",
        ),
    ),
    (
        "How to Mail Merge Word Letters from a Spreadsheet",
        (
            "Open the **Mailings** tab.",
            "Click **Select Recipients** and choose the spreadsheet with the addresses.",
            "Insert the merge fields and click **Finish & Merge**.",
        ),
    ),
    (
        "How to Embed a PowerPoint Slide into Word",
        (
            "Open the **Insert** tab.",
            "Click **Object** and choose the presentation file.",
            "Click **OK** to insert the slide.",
        ),
    ),
    (
        "How to Share a Word Document in Microsoft Teams",
        (
            "Turn on **Track Changes** on the **Review** tab so you can see their edits.",
            "Click **Share** at the top right.",
            "Choose the Teams chat and click **Send**.",
        ),
    ),
)
APP_INVOLVE_QUERIES = (
    "email word document with comments to bob",
    "insert excel chart into word table",
    "send word doc as outlook attachment",
    "mail merge word documents with a header from an excel spreadsheet",
)
ENV: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "How to Print a Word Document",
        (
            "Click the **File** tab.",
            "Choose **Print**.",
            "Check the page size and the margins in the preview.",
            "Click **Print**.",
        ),
    ),
    (
        "How to Save a Word Document to OneDrive",
        (
            "Add page numbers first from **Insert** > **Page Number** so the shared copy is easy to follow.",
            "Click the **File** tab and choose **Save As**.",
            "Pick **OneDrive** as the location, type a file name and click **Save**.",
        ),
    ),
    (
        "How to Print Double-Sided in Word",
        (
            "Check the paper size on the **Layout** tab: click **Size** and choose **A4** or **Letter**.",
            "Open the **File** tab and click **Print**.",
            "Under **Settings**, choose **Print on Both Sides** and click **Print**.",
        ),
    ),
    (
        "How to Install a New Font for Word",
        (
            "Download the font file.",
            "Right-click it and choose **Install**.",
            "Restart Word and pick the font from the **Font** list.",
        ),
    ),
    (
        "How to Save a Word Document as a PDF on Your Desktop",
        (
            "Set the margins on the **Layout** tab so nothing is cut off.",
            "Click the **File** tab and choose **Save As**.",
            "Choose **Desktop**, set the type to **PDF** and click **Save**.",
        ),
    ),
    (
        "How to Open a Word Document from a USB Drive",
        (
            "Plug in the drive.",
            "In Word, click **File** > **Open** > **Browse**, pick the file and click **Open**.",
            "Turn on **Track Changes** on the **Review** tab before you edit it.",
        ),
    ),
)
ENV_QUERIES = (
    "print word document double sided on a4 paper",
    "save word doc with page numbers to onedrive",
    "print word document in landscape orientation",
    "install new font for word font list",
)
OTHER_CONTENT = {
    "irrelevant": IRRELEVANT,
    "non_task": NON_TASK,
    "app_involve": APP_INVOLVE,
    "env": ENV,
    "non_english": NON_ENGLISH,
}
OTHER_QUERIES = {
    "irrelevant": IRRELEVANT_QUERIES,
    "non_task": NON_TASK_QUERIES,
    "app_involve": APP_INVOLVE_QUERIES,
    "env": ENV_QUERIES,
    "non_english": NON_ENGLISH_QUERIES,
}
TOO_SHORT_QUERIES = ("word", "ms word", "help", "word help", "microsoft word", "docx", "word?")
TOO_LONG_QUERIES = (
    "i have a really long document for work with a lot of different sections and my boss wants all of the "
    "headings to look the same and also the text to be a bit bigger and maybe the margins changed too but i "
    "do not know where any of these settings are in word and every time i try something else changes instead "
    "so how do i do all of this without breaking the rest of the document please help it is due tomorrow",
)
