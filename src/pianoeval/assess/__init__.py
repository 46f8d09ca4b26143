"""`pianoeval assess`: judge one performance file and write its JSON and HTML report."""
