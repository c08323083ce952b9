# Sourced by the other scripts: makes (or reuses) the virtualenv and installs the given requirements file.
# The venv lives in $TWIN_VENV (default .venv); a stamp of the requirements' hash skips a no-op pip run.
TWIN_VENV="${TWIN_VENV:-.venv}"
if [ ! -x "$TWIN_VENV/bin/python" ]; then
  echo "== Creating the virtualenv in $TWIN_VENV"
  python3 -m venv "$TWIN_VENV"
fi
_stamp="$TWIN_VENV/.installed-$(basename "$1")"
_hash="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_hash" ]; then
  echo "== Installing $1"
  "$TWIN_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$1"
  echo "$_hash" >"$_stamp"
fi
# An absolute TWIN_VENV is used as it is; a relative one is under the repository.
case "$TWIN_VENV" in
  /*) export PATH="$TWIN_VENV/bin:$PATH" ;;
  *) export PATH="$PWD/$TWIN_VENV/bin:$PATH" ;;
esac
