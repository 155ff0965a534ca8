"""Data stages and interchange: task-plan collection, instantiation, execution, judging, UFO dataflow."""
