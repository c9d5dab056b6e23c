from prunescope.cli import app

app(prog_name="prunescope")
