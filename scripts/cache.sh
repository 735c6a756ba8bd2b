# Sourced by the scripts that install: one cache per machine for what takes minutes to install and
# never changes for a given pin set (the app's venv, the encoder's graph, Label Studio's venv, the
# export consumers' venv). A fresh clone on a machine that has built them before links to them
# instead of installing again; a new pin set gets a directory of its own, so clones on different
# commits never overwrite each other's. EVALGAP_CACHE moves it; the default is the user's cache.
EVALGAP_CACHE=${EVALGAP_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/evalgap}
case "$EVALGAP_CACHE" in /*) ;; *) EVALGAP_CACHE=$PWD/$EVALGAP_CACHE ;; esac
mkdir -p "$EVALGAP_CACHE"

# cache_lock NAME: hold an exclusive lock on NAME until the calling (sub)shell exits, so that two
# clones installing the same thing at once install it once.
cache_lock() {
  exec {_cache_fd}>"$EVALGAP_CACHE/$1.lock"
  flock "$_cache_fd"
}
