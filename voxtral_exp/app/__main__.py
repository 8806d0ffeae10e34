"""`python -m voxtral_exp.app`: start the web app (see voxtral_exp/app/__init__.py)."""

from voxtral_exp.app.server import main
from voxtral_exp.errors import run_command

if __name__ == "__main__":
    run_command(main)
