#!/usr/bin/env bash
# System packages Chronum needs: graphviz's `dot` (graph rendering), and for `make test` Debian's
# `chromium` (the browser test drives it through Playwright; never `playwright install`), and
# `docker.io` + `busybox-static` (the docker executor's tests run a private dockerd).
# Installs what is missing with apt-get (as root, or through sudo); says what to do otherwise.
set -euo pipefail
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The docker executor's tests start their own dockerd and build an image from a static busybox.
{ [ -x /usr/sbin/dockerd ] || command -v dockerd >/dev/null 2>&1; } || missing+=(docker.io)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "chronum setup: installing system packages: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chronum setup: no apt-get here; install ${missing[*]} with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
