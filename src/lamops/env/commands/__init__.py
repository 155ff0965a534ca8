"""WordEnv's commands by ribbon area, as mixins of `lamops.env.word.WordEnv`: a click on a control runs
`cmd_<command>(arg)`, a dialog's OK runs `_ok_<dialog>(fields)`."""
