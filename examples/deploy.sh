#!/bin/sh
# The `deployed` step of the deploy-api example: "deploys" by writing a release marker.
set -eu
mkdir -p build
release="build/release-${CHRONUM_RUN_ID:-local}.txt"
{
  echo "flow: ${CHRONUM_FLOW:-deploy-api}"
  echo "run: ${CHRONUM_RUN_ID:-local}"
  echo "deployed at: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$release"
echo "deployed: wrote $release"
