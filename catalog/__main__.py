from catalog.cli import app

app(prog_name="mnist-catalog")
